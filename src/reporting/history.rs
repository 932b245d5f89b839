//! The report history: links between days (each page's `<nav id="days">`, mended on the
//! neighbouring days' pages when a day is written and on the oldest day left after
//! retention, so every link points at a file that exists) and `reports/index.html`, every
//! day's report newest first.

use crate::core::ids::LaCode;
use crate::sys::fsutil::write_atomic;
use anyhow::Result;
use chrono::{Duration, NaiveDate};
use maud::{html, Markup, DOCTYPE};
use std::fs;
use std::path::Path;

/// Which neighbouring days exist, and how far a page is from `reports/`.
#[derive(Debug, Clone)]
pub struct Nav {
    pub date: NaiveDate,
    pub prev: Option<NaiveDate>,
    pub next: Option<NaiveDate>,
    pub preview: bool,
    /// Whether `reports/index.html` exists (it does once a report has been written).
    pub index: bool,
}

fn day_page(reports: &Path, date: NaiveDate) -> bool {
    reports.join(date.to_string()).join("index.html").is_file()
}

impl Nav {
    pub fn for_day(reports: &Path, date: NaiveDate, preview: bool) -> Nav {
        let prev = date - Duration::days(1);
        let next = date + Duration::days(1);
        Nav {
            date,
            prev: day_page(reports, prev).then_some(prev),
            next: day_page(reports, next).then_some(next),
            preview,
            // The history page is (re)written with every report that is not a preview.
            index: !preview || reports.join("index.html").is_file(),
        }
    }

    /// The links, for the national page (`la: None`) or an LA's page.
    pub fn html(&self, la: Option<LaCode>) -> Markup {
        // From reports/<date>/ (or reports/preview/<date>/), one more for la/.
        let mut up = if self.preview { "../../" } else { "../" }.to_owned();
        if la.is_some() {
            up.push_str("../");
        }
        let day = |d: NaiveDate| match la {
            Some(la) => format!("{up}{d}/la/{la}.html"),
            None => format!("{up}{d}/index.html"),
        };
        let mut links: Vec<Markup> = Vec::new();
        if let Some(p) = self.prev {
            links.push(html! { a rel="prev" href=(day(p)) { "« " (p) } });
        }
        if la.is_some() {
            links.push(html! { a href="../index.html" { "National report " (self.date) } });
        }
        if self.index {
            links.push(html! { a href={ (up) "index.html" } { "All reports" } });
        }
        if la.is_none() {
            links.push(html! { a href="summary.csv" { "summary.csv" } });
        }
        if let Some(n) = self.next {
            links.push(html! { a rel="next" href=(day(n)) { (n) " »" } });
        }
        if self.preview {
            links.push(html! { strong { "PREVIEW: not sent to anyone" } });
        }
        html! {
            nav id="days" {
                @for (i, link) in links.iter().enumerate() {
                    @if i > 0 { " · " }
                    (link)
                }
            }
        }
    }
}

/// Replaces the `<nav id="days">` of a written page.
fn relink(path: &Path, nav: &Markup) -> Result<()> {
    let Ok(text) = fs::read_to_string(path) else {
        return Ok(());
    };
    let (Some(start), Some(end)) = (text.find("<nav id=\"days\">"), text.find("</nav>")) else {
        return Ok(());
    };
    let mended = format!(
        "{}{}{}",
        &text[..start],
        nav.0,
        &text[end + "</nav>".len()..]
    );
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("index.html");
    write_atomic(dir, name, mended.as_bytes())?;
    Ok(())
}

/// Rewrites the day links of `date`'s pages (national and every LA's) to the days that
/// exist now.
pub fn relink_day(reports: &Path, date: NaiveDate) -> Result<()> {
    let dir = reports.join(date.to_string());
    if !dir.join("index.html").is_file() {
        return Ok(());
    }
    let nav = Nav::for_day(reports, date, false);
    relink(&dir.join("index.html"), &nav.html(None))?;
    if let Ok(entries) = fs::read_dir(dir.join("la")) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(la) = name
                .strip_suffix(".html")
                .and_then(|c| LaCode::parse(c).ok())
            {
                relink(&entry.path(), &nav.html(Some(la)))?;
            }
        }
    }
    Ok(())
}

/// After `date`'s report is written: the days either side link to it.
pub fn link_neighbours(reports: &Path, date: NaiveDate) -> Result<()> {
    relink_day(reports, date - Duration::days(1))?;
    relink_day(reports, date + Duration::days(1))
}

/// The days with a report, oldest first.
pub fn days(reports: &Path) -> Vec<NaiveDate> {
    let mut days: Vec<NaiveDate> = fs::read_dir(reports)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .filter(|d: &NaiveDate| day_page(reports, *d))
        .collect();
    days.sort();
    days
}

/// `reports/index.html`: every day's report, newest first, with how many LAs needed action.
pub fn write_index(reports: &Path) -> Result<()> {
    let days: Vec<(NaiveDate, usize)> = days(reports)
        .into_iter()
        .rev()
        .map(|d| {
            (
                d,
                needing_action(&reports.join(d.to_string()).join("summary.csv")),
            )
        })
        .collect();
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "CP-IS gateway reports" }
                style { (maud::PreEscaped(super::style::CSS)) }
            }
            body {
                h1 { "CP-IS gateway: every morning report" }
                @if days.is_empty() { p { "No report has been written yet." } }
                table id="history" {
                    thead { tr { th.name scope="col" { "Day" } th scope="col" { "LAs needing action" } th.name scope="col" { "Figures" } } }
                    tbody {
                        @for (d, n) in &days {
                            tr {
                                td.name { a href={ (d) "/index.html" } { (d.format("%A %-d %B %Y")) } }
                                td { (n) }
                                td.name { a href={ (d) "/summary.csv" } { "summary.csv" } }
                            }
                        }
                    }
                }
            }
        }
    };
    write_atomic(reports, "index.html", page.into_string().as_bytes())?;
    Ok(())
}

/// LAs with something in `summary.csv`'s `needs_action` column.
fn needing_action(summary: &Path) -> usize {
    let Ok(mut reader) = csv::Reader::from_path(summary) else {
        return 0;
    };
    let column = reader
        .headers()
        .ok()
        .and_then(|h| h.iter().position(|c| c == "needs_action"));
    let Some(column) = column else {
        return 0;
    };
    reader
        .records()
        .flatten()
        .filter(|r| r.get(column).is_some_and(|v| !v.is_empty()))
        .count()
}
