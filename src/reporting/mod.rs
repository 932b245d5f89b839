//! Writing the morning report (SPEC 5) for one local day, as the store's history says it
//! stood at the day's end: `reports/<date>/index.html` (needs action first, what changed,
//! every LA, 30-day charts each with its figures in a table), `la/<code>.html` per LA,
//! `summary.csv`, copies of the LAs' `CPIS_DQ_` files under `dq/`, and the history page
//! `reports/index.html`. Pages are static and self-contained (inline CSS and SVG, no
//! scripts, nothing from the network) and print cleanly.
//!
//! A day's figures depend on the date only, never on when the report is run: the nightly
//! run writes yesterday's report; `report --date D` rebuilds D's, identical but for its
//! "generated" line; `--preview` writes under `reports/preview/` and sends nothing. Each
//! LA's data-quality file goes to its outbox once per date.

mod charts;
mod history;
mod la_page;
mod page;
mod style;

use crate::core::dq::{self, Snapshot};
use crate::core::dq_files::{la_dq_csv, summary_csv, DqItem};
use crate::core::ids::{LaCode, MailboxId};
use crate::pipeline::ingest::Gateway;
use crate::store::DayWindow;
use crate::sys::fsutil::write_atomic;
use anyhow::{bail, Result};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use std::path::PathBuf;

/// How many days the trends cover.
const TREND_DAYS: i64 = 30;

/// Where a report went.
#[derive(Debug)]
pub struct Written {
    pub dir: PathBuf,
    /// Data-quality files sent to LA outboxes by this run.
    pub la_files: usize,
}

/// Local midnight at the start of `date` in `tz` (the first such instant across a change
/// of clocks).
fn midnight(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let naive = date.and_hms_opt(0, 0, 0).expect("midnight exists");
    tz.from_local_datetime(&naive)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(naive + Duration::hours(1)))
                .earliest()
        })
        .map_or_else(|| naive.and_utc(), |t| t.with_timezone(&Utc))
}

/// A local day as UTC instants.
pub fn day_window(date: NaiveDate, tz: Tz) -> DayWindow {
    DayWindow {
        date,
        from: midnight(date, tz),
        to: midnight(date + Duration::days(1), tz),
    }
}

impl Gateway<'_> {
    /// Today where the gateway is.
    pub fn today(&self) -> NaiveDate {
        self.clock
            .now()
            .with_timezone(&self.config.timezone)
            .date_naive()
    }

    /// The days of the week up to `last` with no report yet, oldest first: none before the
    /// gateway's first file (there was nothing to report).
    pub fn unreported_days(&mut self, last: NaiveDate) -> Result<Vec<NaiveDate>> {
        let Some(first) = self.store.first_file_at()? else {
            return Ok(Vec::new());
        };
        let first = first.with_timezone(&self.config.timezone).date_naive();
        let from = (last - Duration::days(6)).max(first);
        let done = self.store.reported_days(from)?;
        Ok(from
            .iter_days()
            .take_while(|d| *d <= last)
            .filter(|d| !done.contains(d))
            .collect())
    }

    /// Why a report for `date` cannot be written (a future day; today, unless previewed),
    /// or `Ok`. A past day is rebuilt from the store's history, whenever it was.
    pub fn check_report_date(&mut self, date: NaiveDate, preview: bool) -> Result<()> {
        let today = self.today();
        if date > today {
            bail!(
                "{date} is in the future (today is {today} in {}): there is nothing to report yet",
                self.config.timezone
            );
        }
        if date == today && !preview {
            bail!("{date} is not over yet: its report is written after midnight; `report --preview --date {date}` shows it so far without sending anything");
        }
        Ok(())
    }

    /// Writes the report for `date` (see the module's description).
    pub fn write_reports(&mut self, date: NaiveDate, preview: bool) -> Result<Written> {
        self.check_report_date(date, preview)?;
        let tz = self.config.timezone;
        let now = self.clock.now();
        let mut window = day_window(date, tz);
        // Today, previewed: as it stands now.
        window.to = window.to.min(now);
        let las = self.config.local_authorities.clone();
        let edd_before = date - Duration::days(crate::core::validate::EDD_GRACE_DAYS);
        let mut figures = self
            .store
            .la_figures_at(&las, window.from, window.to, edd_before)?;
        let days: Vec<DayWindow> = (0..TREND_DAYS)
            .rev()
            .map(|back| {
                let mut d = day_window(date - Duration::days(back), tz);
                d.to = d.to.min(window.to);
                d
            })
            .collect();
        let mut trends = self.store.trends(&las, &days, self.config.overdue_hours)?;
        // Before the gateway's first file nobody could be late.
        let first_file = self.store.first_file_at()?;
        for day in &mut trends.national {
            if first_file.is_none_or(|first| day_window(day.date, tz).to < first) {
                day.overdue = 0;
            }
        }
        let national = dq::build(Snapshot {
            date,
            timezone: tz,
            generated_at: now,
            from: window.from,
            to: window.to,
            overdue_hours: self.config.overdue_hours,
            las: las
                .iter()
                .map(|la| (*la, figures.remove(&la.as_u16()).unwrap_or_default()))
                .collect(),
            trend: trends.national,
            la_trends: trends.per_la,
            undelivered: self.undelivered(window)?,
            health_rejected: self.store.health_rejected(window.from, window.to)?,
            log: self.store.access_log_at(window.to, now)?,
        });
        let reports = self.layout.reports();
        let dir = if preview {
            reports.join("preview").join(date.to_string())
        } else {
            reports.join(date.to_string())
        };
        let mut items = self
            .store
            .dq_items(&las, window.from, window.to, edd_before)?;
        for line in national.overdue() {
            items.entry(line.la).or_default().insert(
                0,
                DqItem::Overdue {
                    last_extract_at: line.figures.last_extract_at.map(|t| dq::local(t, tz)),
                    hours: line.age_hours,
                    allowed: national.overdue_hours,
                },
            );
        }
        let in_service = first_file.is_some_and(|first| first <= window.to);
        let mut la_files = 0;
        {
            // One writer decides whether a file was sent (a nightly and a manual run at once).
            let _one_writer = if preview {
                None
            } else {
                Some(self.turn("report")?)
            };
            for (la, items) in &items {
                if items.is_empty() {
                    continue;
                }
                // Not before the gateway was in service (its first file): "overdue" meant nothing.
                if !in_service {
                    continue;
                }
                let name = dq_name(*la, date);
                let csv = la_dq_csv(items);
                write_atomic(&dir.join("dq"), &name, &csv)?;
                if !preview && self.store.dq_file_sent(*la, date)?.is_none() {
                    write_atomic(&self.layout.outbox(&MailboxId::La(*la)), &name, &csv)?;
                    self.store.record_dq_file(*la, date, &name, now)?;
                    la_files += 1;
                }
            }
        }
        let nav = history::Nav::for_day(&reports, date, preview);
        for line in &national.lines {
            let files = self.store.la_last_files(line.la, window.to, 10)?;
            let page = la_page::render(
                &national,
                line,
                &files,
                match items.get(&line.la) {
                    Some(items) if in_service => items,
                    _ => &[],
                },
                &nav,
            );
            write_atomic(
                &dir.join("la"),
                &format!("{}.html", line.la),
                page.into_string().as_bytes(),
            )?;
        }
        write_atomic(&dir, "summary.csv", &summary_csv(&national))?;
        let has_dq = |la: LaCode| in_service && items.get(&la).is_some_and(|i| !i.is_empty());
        write_atomic(
            &dir,
            "index.html",
            page::render(&national, &nav, &has_dq)?
                .into_string()
                .as_bytes(),
        )?;
        if !preview {
            history::link_neighbours(&reports, date)?;
            history::write_index(&reports)?;
            self.store.record_report(date, now, Some(window.from))?;
        }
        tracing::info!(date = %date, dir = %dir.display(), la_files, preview, needs_action = national.actions.len(), "reports written");
        Ok(Written { dir, la_files })
    }

    /// Files MESH reported undelivered during the day.
    fn undelivered(&mut self, w: DayWindow) -> Result<Vec<dq::Undelivered>> {
        let (from, to) = (crate::store::ts(w.from), crate::store::ts(w.to));
        Ok(self
            .store
            .mesh_undelivered(&from, &to, u32::MAX)?
            .into_iter()
            .map(|u| dq::Undelivered {
                file: u.file_name.unwrap_or_else(|| "a message".into()),
                to: u.to.unwrap_or_else(|| "?".into()),
                code: u.status_code.unwrap_or_else(|| "?".into()),
                description: u.description.unwrap_or_default(),
            })
            .collect())
    }
}

/// After retention: the oldest day left no longer links back, and `reports/index.html`
/// lists the days left.
pub fn write_history(reports: &std::path::Path) -> Result<()> {
    if let Some(oldest) = history::days(reports).first() {
        history::relink_day(reports, *oldest)?;
    }
    history::write_index(reports)
}

/// `CPIS_DQ_<la>_<date>.csv`
pub fn dq_name(la: LaCode, date: NaiveDate) -> String {
    format!("CPIS_DQ_{la}_{date}.csv")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_is_local_midnight_to_midnight_across_clock_changes() {
        let london = chrono_tz::Europe::London;
        let day = |d: &str| {
            let w = day_window(d.parse().unwrap(), london);
            (w.from.to_rfc3339(), (w.to - w.from).num_hours())
        };
        assert_eq!(day("2026-11-17"), ("2026-11-17T00:00:00+00:00".into(), 24));
        assert_eq!(day("2026-07-01"), ("2026-06-30T23:00:00+00:00".into(), 24));
        assert_eq!(day("2026-03-29").1, 23, "clocks go forward");
        assert_eq!(day("2026-10-25").1, 25, "clocks go back");
    }
}
