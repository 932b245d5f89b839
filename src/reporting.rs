//! Writing the nightly reports (SPEC 5): figures from the store, the pure model of
//! `core::dq`, then rendering: `reports/<date>/index.html` (one self-contained page: inline
//! CSS and SVG charts, no scripts, nothing from the network), `summary.csv`, and each LA's
//! `CPIS_DQ_<la>_<date>.csv` in its outbox.

use crate::core::dq::{self, la_dq_csv, summary_csv, National, Snapshot};
use crate::core::ids::MailboxId;
use crate::fsutil::write_atomic;
use crate::ingest::Gateway;
use crate::store::Undelivered;
use anyhow::{anyhow, Result};
use chrono::{Duration, NaiveDate};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use plotters::prelude::*;
use std::path::PathBuf;

/// Where a report went.
#[derive(Debug)]
pub struct Written {
    pub dir: PathBuf,
    pub la_files: usize,
}

impl Gateway<'_> {
    /// MESH's non-delivery reports received since the last report (all, the first time).
    fn mesh_undelivered(
        &mut self,
        since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Vec<Undelivered>> {
        let since = since.map(crate::store::ts).unwrap_or_default();
        Ok(self
            .store
            .mesh_counts(chrono::Utc::now())?
            .undelivered
            .into_iter()
            .filter(|u| u.reported_at >= since)
            .collect())
    }

    /// Writes the reports for `date` covering the time since the previous report.
    pub fn write_reports(&mut self, date: NaiveDate) -> Result<Written> {
        let now = self.clock.now();
        let since = self.store.last_report_at()?;
        let las = self.config.local_authorities.clone();
        let edd_before = date - Duration::days(crate::core::validate::EDD_GRACE_DAYS);
        let mut figures = self.store.la_figures(&las, since, now, edd_before)?;
        let trend = self.store.trend(now, 30)?;
        let national = dq::build(Snapshot {
            date,
            generated_at: now,
            since,
            overdue_hours: self.config.overdue_hours,
            las: las
                .iter()
                .map(|la| (*la, figures.remove(&la.as_u16()).unwrap_or_default()))
                .collect(),
            trend,
        });
        let dir = self.layout.reports().join(date.to_string());
        write_atomic(&dir, "summary.csv", &summary_csv(&national))?;
        write_atomic(
            &dir,
            "index.html",
            render(
                &national,
                &self.store.access_log_head()?,
                &self.mesh_undelivered(since)?,
            )?
            .into_string()
            .as_bytes(),
        )?;
        let mut la_files = 0;
        for la in &las {
            let items = self.store.la_dq_items(*la, since, now, edd_before)?;
            if items.is_empty() {
                continue;
            }
            let name = format!("CPIS_DQ_{la}_{date}.csv");
            write_atomic(
                &self.layout.outbox(&MailboxId::La(*la)),
                &name,
                &la_dq_csv(&items),
            )?;
            la_files += 1;
        }
        self.store.record_report(date, now, since)?;
        tracing::info!(date = %date, dir = %dir.display(), la_files, "reports written");
        Ok(Written { dir, la_files })
    }
}

const CSS: &str = "
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1b1b1b; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2rem; border-bottom: 2px solid #005eb8; }
table { border-collapse: collapse; font-size: 0.75rem; }
th, td { border: 1px solid #bbb; padding: 0.2rem 0.3rem; text-align: right; }
th { background: #e8edf3; } td.name, th.name { text-align: left; }
tr.overdue td { background: #fde8e8; }
.empty { font-size: 1.1rem; padding: 1rem; background: #fff6d5; border-left: 4px solid #d5a500; }
figure { margin: 1rem 0; } figcaption { font-style: italic; }
@media print { body { margin: 0.5cm; } figure, table { page-break-inside: avoid; } }
";

fn fmt_time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "never".into())
}

/// The page.
pub fn render(
    n: &National,
    log_head: &crate::store::LogHead,
    undelivered: &[Undelivered],
) -> Result<Markup> {
    let overdue: Vec<_> = n.overdue().collect();
    let open_chart = open_records_chart(n)?;
    let codes_chart = rejections_chart(n)?;
    let trend_chart = trend_chart(n)?;
    Ok(html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "CP-IS gateway national report " (n.date) }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    h1 { "Child protection information sharing: national report " (n.date) }
                    p { "Generated " (fmt_time(Some(n.generated_at))) ". Changes, rejections and attendances since "
                        (n.since.map(|t| fmt_time(Some(t))).unwrap_or_else(|| "the gateway started".into())) "." }
                    p id="access-log-head" { "Access log head: " code { (log_head) } " (" (log_head.entries) " entries). Keep it: "
                        code { "audit verify --expect-head " (log_head) } " fails if the log is later cut or rewritten." }
                }
                @if !n.has_data() {
                    p.empty id="no-data" { "No extracts have been received and no records are held: there is nothing to report for this date." }
                }
                section id="overdue" {
                    h2 { "Overdue local authorities (" (overdue.len()) ")" }
                    p { "No extract for more than " (n.overdue_hours) " hours, or never." }
                    @if overdue.is_empty() {
                        p { "None: every LA sent an extract in time." }
                    } @else {
                        table {
                            thead { tr { th.name scope="col" { "LA" } th.name scope="col" { "Name" } th scope="col" { "Last extract" } th scope="col" { "Age (hours)" } } }
                            tbody {
                                @for l in &overdue {
                                    tr.overdue {
                                        td.name { (l.la) } td.name { (l.la.name()) }
                                        td { @if l.figures.last_extract_at.is_none() { "never sent an extract" } @else { (fmt_time(l.figures.last_extract_at)) } }
                                        td { (l.age_hours.map(|h| h.to_string()).unwrap_or_else(|| "-".into())) }
                                    }
                                }
                            }
                        }
                    }
                }
                @if !undelivered.is_empty() {
                    section id="mesh-undelivered" {
                        h2 { "MESH messages reported undelivered (" (undelivered.len()) ")" }
                        p { "MESH could not deliver these files from the gateway. Ask the recipient; to send one again, copy it from the party's out/sent/ back to out/." }
                        table {
                            thead { tr { th.name scope="col" { "File" } th.name scope="col" { "To" } th.name scope="col" { "Message" } th scope="col" { "Code" } th.name scope="col" { "Reason" } th scope="col" { "Reported" } } }
                            tbody {
                                @for u in undelivered {
                                    tr {
                                        td.name { (u.file_name.as_deref().unwrap_or("?")) }
                                        td.name { (u.to.as_deref().unwrap_or("?")) }
                                        td.name { (u.message_id.as_deref().unwrap_or("?")) }
                                        td { (u.status_code.as_deref().unwrap_or("?")) }
                                        td.name { (u.description.as_deref().unwrap_or("")) }
                                        td { (u.reported_at) }
                                    }
                                }
                            }
                        }
                    }
                }
                section id="local-authorities" {
                    h2 { "Local authorities" }
                    table {
                        thead { tr {
                            th.name scope="col" { "LA" } th.name scope="col" { "Name" } th scope="col" { "Last extract" } th scope="col" { "Age (h)" }
                            th scope="col" { "Open CPP" } th scope="col" { "Open LAC" } th scope="col" { "Open UCPP" }
                            th scope="col" { "New" } th scope="col" { "Updated" } th scope="col" { "Ended" } th scope="col" { "Reopened" }
                            th scope="col" { "Closed by absence" } th scope="col" { "Retained" } th scope="col" { "Rows rejected" }
                            th scope="col" { "Quarantined" } th scope="col" { "Cross-LA conflicts" } th scope="col" { "UCPP past EDD" }
                            th scope="col" { "Attendances" } th scope="col" { "Notifications" }
                        } }
                        tbody {
                            @for l in &n.lines {
                                @let f = &l.figures;
                                tr class=(if l.overdue { "overdue" } else { "" }) {
                                    td.name { (l.la) } td.name { (l.la.name()) } td { (fmt_time(f.last_extract_at)) }
                                    td { (l.age_hours.map(|h| h.to_string()).unwrap_or_else(|| "-".into())) }
                                    td { (f.open[0]) } td { (f.open[1]) } td { (f.open[2]) }
                                    td { (f.changes.new) } td { (f.changes.updated) } td { (f.changes.ended) } td { (f.changes.reopened) }
                                    td { (f.changes.closed_by_absence) } td { (f.changes.retained) } td { (l.rows_rejected) }
                                    td { (f.quarantined) } td { (f.conflicts) } td { (f.ucpp_past_edd) } td { (f.attendances) } td { (f.notifications) }
                                }
                            }
                        }
                    }
                }
                section id="charts" {
                    h2 { "Charts" }
                    figure role="img" aria-label="Bar chart of open records per LA; the same figures are in the table above" {
                        (PreEscaped(open_chart))
                        figcaption { "Open records per LA (the LAs with most, up to 40); every LA's figures are in the table above." }
                    }
                    figure role="img" aria-label="Bar chart of rows rejected by code; the same figures are in the table below" {
                        (PreEscaped(codes_chart))
                        figcaption { "Rows rejected since the previous report, by code." }
                    }
                    table id="rejections" {
                        thead { tr { th.name scope="col" { "Code" } th scope="col" { "Rows rejected" } } }
                        tbody {
                            @if n.rejected_by_code.is_empty() { tr { td.name colspan="2" { "No rows rejected." } } }
                            @for (code, count) in &n.rejected_by_code { tr { td.name { (code) } td { (count) } } }
                        }
                    }
                    figure role="img" aria-label="Line chart of files received and rows rejected per day over 30 days; the same figures are in the table below" {
                        (PreEscaped(trend_chart))
                        figcaption { "Files received and rows rejected per day, last 30 days." }
                    }
                    table id="trend" {
                        thead { tr { th.name scope="col" { "Day" } th scope="col" { "Files" } th scope="col" { "Rows rejected" } } }
                        tbody { @for d in &n.trend { tr { td.name { (d.date) } td { (d.files) } td { (d.rows_rejected) } } } }
                    }
                }
            }
        }
    })
}

fn chart_error<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("cannot draw a chart: {e}")
}

fn open_records_chart(n: &National) -> Result<String> {
    let mut bars: Vec<(String, u64)> = n
        .lines
        .iter()
        .map(|l| (l.la.to_string(), l.figures.open.iter().sum()))
        .filter(|(_, v)| *v > 0)
        .collect();
    bars.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    bars.truncate(40);
    bar_chart("Open records per LA", &bars)
}

fn rejections_chart(n: &National) -> Result<String> {
    let bars: Vec<(String, u64)> = n
        .rejected_by_code
        .iter()
        .map(|(c, v)| (c.to_string(), *v))
        .collect();
    bar_chart("Rows rejected by code", &bars)
}

fn bar_chart(title: &str, bars: &[(String, u64)]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 320)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
        let count = bars.len().max(1) as u32;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(60)
            .y_label_area_size(50)
            .build_cartesian_2d((0u32..count - 1).into_segmented(), 0u64..max + max / 10 + 1)
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(bars.len().max(1))
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => bars
                    .get(*i as usize)
                    .map(|b| b.0.clone())
                    .unwrap_or_default(),
                _ => String::new(),
            })
            .x_label_style(("sans-serif", 10))
            .draw()
            .map_err(chart_error)?;
        chart
            .draw_series(
                Histogram::vertical(&chart)
                    .style(RGBColor(0, 94, 184).filled())
                    .margin(2)
                    .data(bars.iter().enumerate().map(|(i, b)| (i as u32, b.1))),
            )
            .map_err(chart_error)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

fn trend_chart(n: &National) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 320)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let days = n.trend.len().max(1) as u32;
        let max = n
            .trend
            .iter()
            .map(|d| d.files.max(d.rows_rejected))
            .max()
            .unwrap_or(0)
            .max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Files received and rows rejected per day",
                ("sans-serif", 16),
            )
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0u32..days, 0u64..max + max / 10 + 1)
            .map_err(chart_error)?;
        let dates: Vec<String> = n
            .trend
            .iter()
            .map(|d| d.date.format("%d %b").to_string())
            .collect();
        chart
            .configure_mesh()
            .x_labels(10)
            .x_label_formatter(&|i| dates.get(*i as usize).cloned().unwrap_or_default())
            .draw()
            .map_err(chart_error)?;
        let blue = RGBColor(0, 94, 184);
        let red = RGBColor(218, 41, 28);
        chart
            .draw_series(LineSeries::new(
                n.trend.iter().enumerate().map(|(i, d)| (i as u32, d.files)),
                blue.stroke_width(2),
            ))
            .map_err(chart_error)?
            .label("files")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue));
        chart
            .draw_series(LineSeries::new(
                n.trend
                    .iter()
                    .enumerate()
                    .map(|(i, d)| (i as u32, d.rows_rejected)),
                red.stroke_width(2),
            ))
            .map_err(chart_error)?
            .label("rows rejected")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], red));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(chart_error)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}
