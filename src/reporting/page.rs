//! The national page of a day: needs action first, then what changed, every LA (needs
//! action first, two columns so that 153 LAs fit in about a screen and a half), and the
//! 30-day charts, each with its figures in a table.

use super::charts;
use super::history::Nav;
use super::style::CSS;
use crate::core::dq::{local, ActionKind, LaLine, National};
use crate::core::ids::LaCode;
use anyhow::Result;
use maud::{html, Markup, PreEscaped, DOCTYPE};

/// `needs`-style CSS class of an action kind.
pub fn kind_class(kind: ActionKind) -> String {
    kind.label().to_ascii_lowercase().replace(' ', "-")
}

fn row_class(l: &LaLine) -> &'static str {
    match l.needs {
        Some(ActionKind::AuditFailed | ActionKind::Quarantined | ActionKind::Rejected) => {
            "needs-red"
        }
        Some(_) => "needs",
        None => "",
    }
}

/// "late 71 h" / "ok" ...
pub fn status_text(l: &LaLine) -> String {
    match (l.needs, l.age_hours) {
        (Some(ActionKind::Late), Some(h)) => format!("late {h} h"),
        (Some(k), _) => k.label().to_owned(),
        (None, _) => "ok".to_owned(),
    }
}

/// A name cut to fit the narrow national table (the whole name is its title).
fn short_name(name: &str) -> String {
    if name.chars().count() <= 18 {
        name.to_owned()
    } else {
        name.chars().take(17).collect::<String>() + "…"
    }
}

fn la_table(n: &National, lines: &[LaLine], has_dq: &dyn Fn(LaCode) -> bool) -> Markup {
    html! {
        table.las {
            thead { tr {
                th.name scope="col" { "LA" } th.name scope="col" { "Name" } th.name scope="col" { "Status" }
                th scope="col" title="extraction time of the newest extract applied (local)" { "Last extract" }
                th scope="col" title="open CPP / LAC / UCPP" { "Open C/L/U" }
                th scope="col" title="new, ended, closed by absence, reopened during the day" { "+/−/×/↺" }
                th scope="col" { "Rows rej." } th.name scope="col" { "DQ" }
            } }
            tbody {
                @for l in lines {
                    @let f = &l.figures;
                    @let c = &f.changes;
                    tr class=(row_class(l)) {
                        td.name { a href={ "la/" (l.la) ".html" } { (l.la) } }
                        td.name title=(l.la.name()) { (short_name(l.la.name())) }
                        td.name { (status_text(l)) }
                        td { (f.last_extract_at.map(|t| t.with_timezone(&n.timezone).format("%d %b %H:%M").to_string()).unwrap_or_else(|| "never".into())) }
                        td { (f.open[0]) "/" (f.open[1]) "/" (f.open[2]) }
                        td { (c.new) "/" (c.ended) "/" (c.closed_by_absence) "/" (c.reopened) }
                        td { (f.rows_rejected) }
                        td.name { @if has_dq(l.la) { a href={ "dq/" (super::dq_name(l.la, n.date)) } { "csv" } } }
                    }
                }
            }
        }
    }
}

/// The page.
pub fn render(n: &National, nav: &Nav, has_dq: &dyn Fn(LaCode) -> bool) -> Result<Markup> {
    let outcomes_chart = charts::outcomes(&n.trend)?;
    let overdue_chart = charts::overdue(&n.trend)?;
    let worst = n.most_rejected(15);
    let codes = charts::top_codes(&worst);
    let codes_chart = if worst.is_empty() {
        None
    } else {
        Some(charts::codes_by_la(&worst)?)
    };
    let half = n.lines.len().div_ceil(2);
    let needing = n.lines.iter().filter(|l| l.needs.is_some()).count();
    let tz = n.timezone;
    Ok(html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "CP-IS morning report " (n.date) }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    (nav.html(None))
                    h1 { "CP-IS morning report: " (n.date.format("%A %-d %B %Y")) }
                    p.meta { "Figures as at the end of the day (" (local(n.from, tz)) " to " (local(n.to, tz)) ", " (tz.name())
                        "); changes are those made during it. Generated " (local(n.generated_at, tz)) "." }
                }
                @if !n.has_data() {
                    p.empty id="no-data" { "No extracts have been received and no records are held: there is nothing to report for this date." }
                }
                section id="needs-action" {
                    h2 { "Needs action today (" (n.actions.len()) ")" }
                    @if n.actions.is_empty() {
                        p.ok { "Nothing needs action today." }
                    } @else {
                        ol.actions {
                            @for a in &n.actions {
                                li class=(kind_class(a.kind)) {
                                    @match a.la {
                                        Some(la) => { a href={ "la/" (la) ".html" } { (a.what) } }
                                        None => { strong { (a.what) } }
                                    }
                                    @if !a.members.is_empty() {
                                        ": "
                                        @for (i, m) in a.members.iter().enumerate() {
                                            @if i > 0 { ", " }
                                            a href={ "la/" (m.la) ".html" } title=(m.la.name()) { (m.la) }
                                            @if !m.detail.is_empty() { " (" (m.detail) ")" }
                                        }
                                    }
                                    span.todo { " — " (a.todo) }
                                }
                            }
                        }
                    }
                    p id="access-log" {
                        "Access log at the end of the day: " (n.log.entries) " entries, head " code { (n.log.entries) ":" (n.log.head) } ". "
                        @match &n.log.verified {
                            Ok(()) => span.ok { "audit verify passed." }
                            Err(why) => span.bad { "audit verify FAILED: " (why) }
                        }
                        " Keep the head: " code { "audit verify --expect-head " (n.log.entries) ":" (n.log.head) } " fails if the log is later cut or rewritten."
                    }
                }
                section id="changes" {
                    h2 { "What changed on " (n.date.format("%-d %B")) }
                    table {
                        thead { tr {
                            th scope="col" { "Files accepted" } th scope="col" { "partial" } th scope="col" { "rejected" } th scope="col" { "quarantined" }
                            th scope="col" { "New records" } th scope="col" { "Ended" } th scope="col" { "Closed by absence" } th scope="col" { "Reopened" }
                            th scope="col" { "Rows rejected" } th scope="col" { "Open records" }
                        } }
                        tbody { tr {
                            td { (n.files.accepted) } td { (n.files.partial) } td { (n.files.rejected) } td { (n.files.quarantined) }
                            td { (n.changes.new) } td { (n.changes.ended) } td { (n.changes.closed_by_absence) } td { (n.changes.reopened) }
                            td { (n.rows_rejected) } td { (n.total_open()) }
                        } }
                    }
                    p.meta { "New counts every record the gateway had not held before, including those that arrive already ended; open records are as at the end of the day." }
                    p id="movers" {
                        @if n.movers.is_empty() { "No LA's records moved during the day." } @else {
                            "Moved most (new + ended + closed + reopened + rows rejected): "
                            @for (i, la) in n.movers.iter().enumerate() {
                                @if i > 0 { ", " }
                                @let l = n.line(*la);
                                a href={ "la/" (la) ".html" } { (la) " " (la.name()) }
                                " (" (l.map_or(0, LaLine::movement)) ")"
                            }
                            "."
                        }
                    }
                }
                section id="local-authorities" {
                    h2 { "Local authorities (" (n.lines.len()) ", " (needing) " needing action)" }
                    p.meta { "Most urgent first (in the order of the list above), then by code. Times are local (" (tz.name()) "). "
                        "Open C/L/U: open CPP / LAC / UCPP records. +/−/×/↺: new / ended / closed by absence / reopened during the day. "
                        "Each code opens the LA's page: 30-day trends, its last files, its data-quality items." }
                    div.cols {
                        (la_table(n, &n.lines[..half], has_dq))
                        (la_table(n, &n.lines[half..], has_dq))
                    }
                }
                section id="charts" {
                    h2 { "The last 30 days" }
                    figure role="img" aria-label="Line chart of extract files per day by outcome; the figures are in the table below" {
                        (PreEscaped(outcomes_chart))
                        figcaption { "Extract files per day by outcome." }
                    }
                    figure role="img" aria-label="Line chart of LAs overdue at the end of each day; the figures are in the table below" {
                        (PreEscaped(overdue_chart))
                        figcaption { "LAs overdue (no extract within " (n.overdue_hours) " hours) at the end of each day." }
                    }
                    table id="trend" {
                        thead { tr {
                            th.name scope="col" { "Day" } th scope="col" { "Accepted" } th scope="col" { "Partial" } th scope="col" { "Rejected" }
                            th scope="col" { "Quarantined" } th scope="col" { "Rows rejected" } th scope="col" { "LAs overdue" }
                        } }
                        tbody { @for d in &n.trend { tr {
                            td.name { (d.date) } td { (d.files.accepted) } td { (d.files.partial) } td { (d.files.rejected) }
                            td { (d.files.quarantined) } td { (d.rows_rejected) } td { (d.overdue) }
                        } } }
                    }
                    @if let Some(chart) = codes_chart {
                        figure role="img" aria-label="Stacked bar chart of row errors by code for the LAs with most rows rejected; the figures are in the table below" {
                            (PreEscaped(chart))
                            figcaption { "Row errors during the day by code, for the " (worst.len()) " LA(s) with most rows rejected (at most 15)." }
                        }
                        table id="rejections" {
                            thead { tr {
                                th.name scope="col" { "LA" }
                                @for c in &codes { th scope="col" { (c) } }
                                th scope="col" { "other" } th scope="col" { "Rows rejected" }
                            } }
                            tbody {
                                @for l in &worst {
                                    tr {
                                        td.name { a href={ "la/" (l.la) ".html" } { (l.la) " " (l.la.name()) } }
                                        @for v in charts::by_codes(l, &codes) { td { (v) } }
                                        td { (l.figures.rows_rejected) }
                                    }
                                }
                            }
                        }
                    } @else {
                        p id="rejections" { "No rows were rejected during the day." }
                    }
                }
            }
        }
    })
}
