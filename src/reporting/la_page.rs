//! One LA's page of a day: what needs action about it, its figures, 30-day sparklines (with
//! the figures in a table), its last 10 files and its data-quality items (NHS numbers
//! masked: the full ones are in the LA's own file).

use super::charts::sparkline;
use super::history::Nav;
use super::page::{kind_class, status_text};
use super::style::CSS;
use crate::core::dq::{codes_text, local, LaDay, LaLine, National};
use crate::core::dq_files::DqItem;
use crate::core::nhs::NhsNumber;
use crate::store::FileLine;
use maud::{html, Markup, PreEscaped, DOCTYPE};

fn masked(nhs: &str) -> String {
    NhsNumber::parse(nhs).map_or_else(|_| nhs.to_owned(), |n| n.to_string())
}

pub fn render(n: &National, l: &LaLine, files: &[FileLine], items: &[DqItem], nav: &Nav) -> Markup {
    let tz = n.timezone;
    let f = &l.figures;
    let days: &[LaDay] = n.la_trends.get(&l.la).map(Vec::as_slice).unwrap_or(&[]);
    let series: [(&str, Vec<u64>); 5] = [
        ("Files", days.iter().map(|d| d.files).collect()),
        (
            "Rows rejected",
            days.iter().map(|d| d.rows_rejected).collect(),
        ),
        ("Open CPP", days.iter().map(|d| d.open[0]).collect()),
        ("Open LAC", days.iter().map(|d| d.open[1]).collect()),
        ("Open UCPP", days.iter().map(|d| d.open[2]).collect()),
    ];
    // Its own lines, and its own wording of the shared lines that name it.
    let actions: Vec<(String, &str, String)> = n
        .actions
        .iter()
        .filter_map(|a| {
            if a.la == Some(l.la) {
                return Some((a.what.clone(), a.todo.as_str(), kind_class(a.kind)));
            }
            let m = a.members.iter().find(|m| m.la == l.la)?;
            Some((m.what.clone(), a.todo.as_str(), kind_class(a.kind)))
        })
        .collect();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "CP-IS " (l.la) " " (l.la.name()) " " (n.date) }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    (nav.html(Some(l.la)))
                    h1 { "LA " (l.la) " " (l.la.name()) ": " (n.date.format("%A %-d %B %Y")) }
                    p.meta { "As at " (local(n.to, tz)) " (" (tz.name()) "); changes from " (local(n.from, tz)) ". Status: " strong id="status" { (status_text(l)) } }
                }
                section id="needs-action" {
                    h2 { "Needs action (" (actions.len()) ")" }
                    @if actions.is_empty() { p.ok { "Nothing needs action about this LA." } }
                    ol.actions { @for (what, todo, class) in &actions { li class=(class) { (what) span.todo { " — " (todo) } } } }
                }
                section id="figures" {
                    h2 { "Figures" }
                    table {
                        tbody {
                            tr { th.name scope="row" { "Last extract applied" } td id="last-extract" { (f.last_extract_at.map(|t| local(t, tz)).unwrap_or_else(|| "never".into())) } }
                            tr { th.name scope="row" { "Hours since" } td { (l.age_hours.map(|h| h.to_string()).unwrap_or_else(|| "-".into())) } }
                            tr { th.name scope="row" { "Open CPP / LAC / UCPP" } td id="open" { (f.open[0]) " / " (f.open[1]) " / " (f.open[2]) } }
                            tr { th.name scope="row" { "Files during the day (accepted / partial / rejected / quarantined)" } td id="files" { (f.files.accepted) " / " (f.files.partial) " / " (f.files.rejected) " / " (f.files.quarantined) } }
                            tr { th.name scope="row" { "New / updated / ended / reopened / closed by absence / retained" } td id="changes" {
                                (f.changes.new) " / " (f.changes.updated) " / " (f.changes.ended) " / " (f.changes.reopened) " / " (f.changes.closed_by_absence) " / " (f.changes.retained) } }
                            tr { th.name scope="row" { "Rows rejected" } td id="rows-rejected" { (f.rows_rejected) } }
                            tr { th.name scope="row" { "Quarantined (waiting)" } td { (f.quarantined.len()) } }
                            tr { th.name scope="row" { "Children also open with another LA" } td { (f.conflicts) } }
                            tr { th.name scope="row" { "UCPPs past expected delivery" } td { (f.ucpp_past_edd) } }
                            tr { th.name scope="row" { "Attendances notified / notifications" } td { (f.attendances) " / " (f.notifications) } }
                        }
                    }
                }
                section id="trends" {
                    h2 { "The last " (days.len()) " days" }
                    table id="sparklines" {
                        thead { tr { th.name scope="col" { "" } th scope="col" { "trend" } th scope="col" { "first" } th scope="col" { "min" } th scope="col" { "max" } th scope="col" { "last" } } }
                        tbody { @for (name, values) in &series {
                            tr {
                                th.name scope="row" { (name) }
                                td { (PreEscaped(sparkline(values))) }
                                td { (values.first().copied().unwrap_or(0)) }
                                td { (values.iter().min().copied().unwrap_or(0)) }
                                td { (values.iter().max().copied().unwrap_or(0)) }
                                td { (values.last().copied().unwrap_or(0)) }
                            }
                        } }
                    }
                    details.figures open {
                        summary { "Every day's figures" }
                        table id="days" {
                            thead { tr { th.name scope="col" { "Day" } th scope="col" { "Files" } th scope="col" { "Rows rejected" } th scope="col" { "Open CPP" } th scope="col" { "Open LAC" } th scope="col" { "Open UCPP" } } }
                            tbody { @for d in days { tr { td.name { (d.date) } td { (d.files) } td { (d.rows_rejected) } td { (d.open[0]) } td { (d.open[1]) } td { (d.open[2]) } } } }
                        }
                    }
                }
                section id="files-list" {
                    h2 { "Its last extract files (" (files.len()) ", at most 10)" }
                    table id="last-files" {
                        thead { tr { th.name scope="col" { "File" } th scope="col" { "Processed" } th.name scope="col" { "Outcome" } th scope="col" { "Rows" } th scope="col" { "Invalid" } th.name scope="col" { "Codes" } } }
                        tbody {
                            @if files.is_empty() { tr { td.name colspan="6" { "No extract received yet." } } }
                            @for file in files { tr {
                                td.name { (file.name) } td { (local(file.processed_at, tz)) } td.name { (file.outcome) }
                                td { (file.rows) } td { (file.invalid_rows) } td.name { (codes_text(&file.codes)) }
                            } }
                        }
                    }
                }
                section id="dq" {
                    h2 { "Data-quality items (" (items.len()) ")" }
                    @if items.is_empty() {
                        p.ok { "None: no data-quality file for this LA today." }
                    } @else {
                        p {
                            "The LA's data-quality file for the day: " a href={ "../dq/" (super::dq_name(l.la, n.date)) } { (super::dq_name(l.la, n.date)) }
                            @if nav.preview { " (with full NHS numbers; a preview: not sent)." } @else { " (with full NHS numbers; sent to the LA once for this day)." }
                        }
                        table id="dq-items" {
                            thead { tr { th.name scope="col" { "Kind" } th.name scope="col" { "File" } th scope="col" { "Row" } th.name scope="col" { "Column" } th.name scope="col" { "Code" } th.name scope="col" { "NHS number" } th.name scope="col" { "Plan" } th.name scope="col" { "Detail" } } }
                            tbody { @for item in items {
                                @let c = item.cells();
                                tr { td.name { (c[0]) } td.name { (c[1]) } td { (c[2]) } td.name { (c[3]) } td.name { (c[4]) } td.name { (masked(&c[5])) } td.name { (c[6]) } td.name { (c[7]) } }
                            } }
                        }
                    }
                }
            }
        }
    }
}
