//! The morning report's model (SPEC 5): from the figures of one local day as they stood at
//! its end, the lead's questions answered — what needs action today (one line each, with
//! what to do), what changed during the day and who moved most, every LA's line (needs
//! action first), the 30-day trends. Its CSV files are `dq_files`; pages are `reporting`.

use super::codes::Code;
use super::ids::LaCode;
use super::report::Changes;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use std::collections::BTreeMap;

/// Extract files processed, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcomes {
    pub accepted: u64,
    pub partial: u64,
    pub rejected: u64,
    pub quarantined: u64,
}

impl Outcomes {
    pub fn total(&self) -> u64 {
        self.accepted + self.partial + self.rejected + self.quarantined
    }

    /// Counts `n` files of an outcome (duplicates and others are not counted).
    pub fn count(&mut self, outcome: &str, n: u64) {
        match outcome {
            "accepted" => self.accepted += n,
            "partial" => self.partial += n,
            "rejected" => self.rejected += n,
            "quarantined" => self.quarantined += n,
            _ => {}
        }
    }
}

/// An LA's most recent extract file at the end of the day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatestFile {
    pub name: String,
    pub outcome: String,
    /// File error codes, then the most frequent row error codes with their counts.
    pub codes: Vec<(String, u64)>,
}

/// A file waiting in quarantine at the end of the day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedFile {
    pub id: i64,
    pub name: String,
    /// Says what a release would close (e.g. "would close 4 of the LA's 10 open records").
    pub reason: String,
}

/// What the store says about one LA: state at the end of the day, changes during it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaFigures {
    pub last_extract_at: Option<DateTime<Utc>>,
    /// Open records by plan type: CPP, LAC, UCPP.
    pub open: [u64; 3],
    /// Reconciliation outcomes of the files applied during the day.
    pub changes: Changes,
    /// Extract files processed during the day, by outcome.
    pub files: Outcomes,
    /// Row errors during the day, by code.
    pub rejected_by_code: BTreeMap<Code, u64>,
    /// Rows rejected during the day.
    pub rows_rejected: u64,
    pub latest_file: Option<LatestFile>,
    pub quarantined: Vec<QuarantinedFile>,
    pub conflicts: u64,
    pub ucpp_past_edd: u64,
    pub attendances: u64,
    pub notifications: u64,
    /// Notifications queued at the end of the day and not yet written to the outbox.
    pub notifications_pending: u64,
}

/// The nation on one day of the 30-day trend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Day {
    pub date: NaiveDate,
    pub files: Outcomes,
    pub rows_rejected: u64,
    /// LAs overdue at the end of the day.
    pub overdue: u64,
}

/// One LA on one day of its 30-day trend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LaDay {
    pub date: NaiveDate,
    pub files: u64,
    pub rows_rejected: u64,
    /// Open CPP, LAC, UCPP at the end of the day.
    pub open: [u64; 3],
}

/// A file MESH reported undelivered during the day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undelivered {
    pub file: String,
    pub to: String,
    pub code: String,
    pub description: String,
}

/// A health organisation's file rejected during the day (an attendance file, or anything
/// else dropped into its mailbox and refused unread).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthRejected {
    pub mailbox: String,
    pub file: String,
    pub codes: Vec<(String, u64)>,
}

/// The access log at the end of the day, and whether its chain checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogCheck {
    pub entries: u64,
    pub head: String,
    /// `Err` says where the chain broke.
    pub verified: Result<(), String>,
}

/// Everything a day's report is built from.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub date: NaiveDate,
    pub timezone: Tz,
    pub generated_at: DateTime<Utc>,
    /// The day, as UTC instants: figures cover (`from`, `to`]; state is as at `to`.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub overdue_hours: u32,
    pub las: Vec<(LaCode, LaFigures)>,
    pub trend: Vec<Day>,
    pub la_trends: BTreeMap<LaCode, Vec<LaDay>>,
    pub undelivered: Vec<Undelivered>,
    pub health_rejected: Vec<HealthRejected>,
    pub log: LogCheck,
}

/// What needs a person today, most urgent kind first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ActionKind {
    AuditFailed,
    Quarantined,
    Rejected,
    NeverSent,
    Late,
    NotificationsPending,
    Undelivered,
    HealthRejected,
    UcppPastEdd,
    Conflict,
}

impl ActionKind {
    /// A word or two for an LA's status cell.
    pub fn label(self) -> &'static str {
        match self {
            ActionKind::AuditFailed => "audit failed",
            ActionKind::Quarantined => "quarantined",
            ActionKind::Rejected => "rejected",
            ActionKind::NeverSent => "never sent",
            ActionKind::Late => "late",
            ActionKind::NotificationsPending => "notifications pending",
            ActionKind::Undelivered => "undelivered",
            ActionKind::HealthRejected => "health file rejected",
            ActionKind::UcppPastEdd => "UCPP past EDD",
            ActionKind::Conflict => "conflict",
        }
    }
}

/// One line of "Needs action today".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub kind: ActionKind,
    pub la: Option<LaCode>,
    /// What is wrong.
    pub what: String,
    /// What to do.
    pub todo: String,
    /// When many LAs share the same kind, one line names them all: each LA with a detail
    /// (hours late, codes, a count), most urgent first.
    pub members: Vec<Member>,
}

/// One LA on a shared line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub la: LaCode,
    /// Hours late, codes, a count ... (may be empty).
    pub detail: String,
    /// The line this LA would have had on its own (its page shows it).
    pub what: String,
}

impl Action {
    /// The members as text: `330 (61 h), 202 (60 h)`.
    pub fn members_text(&self) -> String {
        self.members
            .iter()
            .map(|m| {
                if m.detail.is_empty() {
                    m.la.to_string()
                } else {
                    format!("{} ({})", m.la, m.detail)
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.members.is_empty() {
            write!(f, "{}: {}", self.what, self.todo)
        } else {
            write!(f, "{}: {}: {}", self.what, self.members_text(), self.todo)
        }
    }
}

/// More LAs than this with the same kind of problem share one line.
const GROUP_OVER: usize = 5;

/// The one line for `n` LAs with the same kind of problem, and each one's detail.
fn group_line(kind: ActionKind, n: usize, overdue_hours: u32) -> String {
    match kind {
        ActionKind::Rejected => format!("{n} LAs: their latest file was rejected"),
        ActionKind::NeverSent => {
            format!("{n} LAs have never sent an extract that could be applied")
        }
        ActionKind::Late => {
            format!("{n} LAs have sent no extract for more than {overdue_hours} hours")
        }
        ActionKind::NotificationsPending => {
            format!("{n} LAs have attendance notifications not yet written to their outbox")
        }
        ActionKind::UcppPastEdd => {
            format!("{n} LAs have unborn-child plans still open past the expected delivery date")
        }
        ActionKind::Conflict => {
            format!("{n} LAs hold records of children also open with another LA")
        }
        // Never grouped: each needs its own decision.
        ActionKind::AuditFailed
        | ActionKind::Quarantined
        | ActionKind::Undelivered
        | ActionKind::HealthRejected => String::new(),
    }
}

/// One LA's line of the national report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaLine {
    pub la: LaCode,
    pub figures: LaFigures,
    /// Hours from the last extract's extraction time to the end of the day.
    pub age_hours: Option<i64>,
    pub overdue: bool,
    /// The most urgent thing about this LA, if any.
    pub needs: Option<ActionKind>,
}

impl LaLine {
    /// New, ended, closed by absence and reopened records, and rows rejected: how much
    /// this LA moved during the day.
    pub fn movement(&self) -> u64 {
        let c = &self.figures.changes;
        c.new + c.ended + c.closed_by_absence + c.reopened + self.figures.rows_rejected
    }
}

/// The national report of one day.
#[derive(Debug, Clone)]
pub struct National {
    pub date: NaiveDate,
    pub timezone: Tz,
    pub generated_at: DateTime<Utc>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub overdue_hours: u32,
    pub actions: Vec<Action>,
    /// Every configured LA: those needing action first (most urgent first), then by code.
    pub lines: Vec<LaLine>,
    pub changes: Changes,
    pub files: Outcomes,
    pub rows_rejected: u64,
    pub rejected_by_code: BTreeMap<Code, u64>,
    /// The LAs that moved most during the day (at most 5, none that did not move).
    pub movers: Vec<LaCode>,
    pub trend: Vec<Day>,
    pub la_trends: BTreeMap<LaCode, Vec<LaDay>>,
    pub log: LogCheck,
}

impl National {
    pub fn overdue(&self) -> impl Iterator<Item = &LaLine> {
        self.lines.iter().filter(|l| l.overdue)
    }

    pub fn line(&self, la: LaCode) -> Option<&LaLine> {
        self.lines.iter().find(|l| l.la == la)
    }

    pub fn total_open(&self) -> u64 {
        self.lines
            .iter()
            .map(|l| l.figures.open.iter().sum::<u64>())
            .sum()
    }

    /// Whether anything at all happened or is known (a report of nothing says so).
    pub fn has_data(&self) -> bool {
        self.lines
            .iter()
            .any(|l| l.figures.last_extract_at.is_some() || l.figures.open.iter().any(|&n| n > 0))
    }

    /// The LAs (at most `n`) with most rows rejected during the day, with their codes.
    pub fn most_rejected(&self, n: usize) -> Vec<&LaLine> {
        let mut lines: Vec<&LaLine> = self
            .lines
            .iter()
            .filter(|l| l.figures.rows_rejected > 0)
            .collect();
        lines.sort_by_key(|l| (std::cmp::Reverse(l.figures.rows_rejected), l.la));
        lines.truncate(n);
        lines
    }
}

fn la_label(la: LaCode) -> String {
    format!("LA {la} {}", la.name())
}

/// Overdue at `at`: no extract applied, or the newest one's extraction time more than
/// `hours` before `at` (exactly: 36 h 1 min is overdue). `status`, the report's lines and
/// its 30-day chart all use this.
pub fn is_overdue(last_extract_at: Option<DateTime<Utc>>, at: DateTime<Utc>, hours: u32) -> bool {
    last_extract_at.is_none_or(|t| at - t > chrono::Duration::hours(i64::from(hours)))
}

/// A time shown in the report's time zone: `2026-11-21 02:00`.
pub fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string()
}

/// `ERROR_RATE, DATE_FORMAT ×3`: codes with their counts when more than one.
pub fn codes_text(codes: &[(String, u64)]) -> String {
    codes
        .iter()
        .map(|(c, n)| {
            if *n > 1 {
                format!("{c} ×{n}")
            } else {
                c.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The needs-action lines about one LA.
fn la_actions(la: LaCode, f: &LaFigures, age: Option<i64>, s: &Snapshot) -> Vec<Action> {
    let mut out = Vec::new();
    // (action, its detail when grouped with others)
    let mut add = |kind, what: String, todo: &str, detail: String| {
        out.push(Action {
            kind,
            la: Some(la),
            what: what.clone(),
            todo: todo.to_owned(),
            members: vec![Member { la, detail, what }],
        })
    };
    let who = la_label(la);
    for q in &f.quarantined {
        add(
            ActionKind::Quarantined,
            format!("{who}: {} is quarantined: {}", q.name, q.reason),
            &format!(
                "decide it: cpis-gateway quarantine show Q{}, then release or reject it",
                q.id
            ),
            String::new(),
        );
    }
    if let Some(latest) = f.latest_file.as_ref().filter(|l| l.outcome == "rejected") {
        add(
            ActionKind::Rejected,
            format!(
                "{who}: its latest file {} was rejected ({})",
                latest.name,
                codes_text(&latest.codes)
            ),
            "tell the LA's data officer: the acknowledgement lists its problems",
            codes_text(&latest.codes),
        );
    }
    match (f.last_extract_at, age) {
        (None, _) => add(
            ActionKind::NeverSent,
            format!("{who}: has never sent an extract that could be applied"),
            "chase the LA: its export may not be set up, or every file was rejected",
            String::new(),
        ),
        (Some(at), Some(h)) if is_overdue(Some(at), s.to, s.overdue_hours) => add(
            ActionKind::Late,
            format!(
                "{who}: no extract for {h} hours (last extracted {}; {} allowed)",
                local(at, s.timezone),
                s.overdue_hours
            ),
            "chase the LA's data officer",
            format!("{h} h"),
        ),
        _ => {}
    }
    // Counts that need someone when they are not zero.
    for (kind, n, what, todo) in [
        (
            ActionKind::NotificationsPending,
            f.notifications_pending,
            "attendance notification(s) not yet written to its outbox",
            "check that the outbox can be written (disk, permissions) and the daemon's log",
        ),
        (
            ActionKind::UcppPastEdd,
            f.ucpp_past_edd,
            "unborn-child plan(s) still open past the expected delivery date",
            "the LA should end each or give the born child a plan of its own (listed in its CPIS_DQ file)",
        ),
        (
            ActionKind::Conflict,
            f.conflicts,
            "record(s) of children also open with another LA",
            "the LAs should agree which of them holds each plan (listed in their CPIS_DQ files)",
        ),
    ] {
        if n > 0 {
            add(kind, format!("{who}: {n} {what}"), todo, n.to_string());
        }
    }
    out
}

/// One line per LA, or one line per kind when more than [`GROUP_OVER`] LAs share it
/// (`actions` sorted by kind). Each LA's line carries its own detail for that purpose.
fn group(actions: Vec<Action>, overdue_hours: u32) -> Vec<Action> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < actions.len() {
        let kind = actions[i].kind;
        let end = actions[i..]
            .iter()
            .position(|a| a.kind != kind)
            .map_or(actions.len(), |p| i + p);
        let run = &actions[i..end];
        let line = group_line(kind, run.len(), overdue_hours);
        if run.len() > GROUP_OVER && !line.is_empty() {
            out.push(Action {
                kind,
                la: None,
                what: line,
                todo: run[0].todo.clone(),
                members: run.iter().flat_map(|a| a.members.clone()).collect(),
            });
        } else {
            out.extend(run.iter().cloned().map(|mut a| {
                a.members.clear();
                a
            }));
        }
        i = end;
    }
    out
}

/// Builds the day's national report from a snapshot.
pub fn build(s: Snapshot) -> National {
    let mut actions = Vec::new();
    if let Err(why) = &s.log.verified {
        actions.push(Action {
            kind: ActionKind::AuditFailed,
            la: None,
            what: format!("The access log failed its check: {why}"),
            todo: "treat it as a security incident: keep a copy of the store, run cpis-gateway audit verify".into(),
            members: vec![],
        });
    }
    let mut lines: Vec<LaLine> = s
        .las
        .iter()
        .map(|(la, figures)| {
            let age_hours = figures.last_extract_at.map(|t| (s.to - t).num_hours());
            let mine = la_actions(*la, figures, age_hours, &s);
            let needs = mine.iter().map(|a| a.kind).min();
            actions.extend(mine);
            LaLine {
                la: *la,
                overdue: is_overdue(figures.last_extract_at, s.to, s.overdue_hours),
                age_hours,
                figures: figures.clone(),
                needs,
            }
        })
        .collect();
    for u in &s.undelivered {
        actions.push(Action {
            kind: ActionKind::Undelivered,
            la: None,
            what: format!(
                "{} to {} was not delivered by MESH (code {}: {})",
                u.file, u.to, u.code, u.description
            ),
            todo: "ask the recipient; copy the file from out/sent/ back to out/ to send it again"
                .into(),
            members: vec![],
        });
    }
    for h in &s.health_rejected {
        actions.push(Action {
            kind: ActionKind::HealthRejected,
            la: None,
            what: format!(
                "{}: its file {} was rejected ({})",
                h.mailbox,
                h.file,
                codes_text(&h.codes)
            ),
            todo:
                "tell the health organisation: the acknowledgement in its outbox lists its problems"
                    .into(),
            members: vec![],
        });
    }
    // Most urgent kind first; late LAs by hours late; then by LA.
    actions.sort_by_key(|a| {
        let late = match a.kind {
            ActionKind::Late => lines
                .iter()
                .find(|l| Some(l.la) == a.la)
                .and_then(|l| l.age_hours)
                .map_or(0, |h| -h),
            _ => 0,
        };
        (a.kind, late, a.la)
    });
    let actions = group(actions, s.overdue_hours);
    lines.sort_by_key(|l| (l.needs.is_none(), l.needs, l.la));
    let mut changes = Changes::default();
    let mut files = Outcomes::default();
    let mut rows_rejected = 0;
    let mut rejected_by_code = BTreeMap::new();
    for l in &lines {
        let (c, f) = (&l.figures.changes, &l.figures);
        changes.new += c.new;
        changes.updated += c.updated;
        changes.unchanged += c.unchanged;
        changes.ended += c.ended;
        changes.reopened += c.reopened;
        changes.closed_by_absence += c.closed_by_absence;
        changes.retained += c.retained;
        files.accepted += f.files.accepted;
        files.partial += f.files.partial;
        files.rejected += f.files.rejected;
        files.quarantined += f.files.quarantined;
        rows_rejected += f.rows_rejected;
        for (code, n) in &f.rejected_by_code {
            *rejected_by_code.entry(*code).or_insert(0) += n;
        }
    }
    let mut movers: Vec<&LaLine> = lines.iter().filter(|l| l.movement() > 0).collect();
    movers.sort_by_key(|l| (std::cmp::Reverse(l.movement()), l.la));
    let movers = movers.into_iter().take(5).map(|l| l.la).collect();
    National {
        date: s.date,
        timezone: s.timezone,
        generated_at: s.generated_at,
        from: s.from,
        to: s.to,
        overdue_hours: s.overdue_hours,
        actions,
        lines,
        changes,
        files,
        rows_rejected,
        rejected_by_code,
        movers,
        trend: s.trend,
        la_trends: s.la_trends,
        log: s.log,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::dq_files::*;

    fn la(code: &str) -> LaCode {
        LaCode::parse(code).unwrap()
    }

    fn snapshot(las: Vec<(LaCode, LaFigures)>) -> Snapshot {
        Snapshot {
            date: "2026-11-21".parse().unwrap(),
            timezone: chrono_tz::Europe::London,
            generated_at: "2026-11-22T02:00:00Z".parse().unwrap(),
            from: "2026-11-21T00:00:00Z".parse().unwrap(),
            to: "2026-11-22T00:00:00Z".parse().unwrap(),
            overdue_hours: 36,
            las,
            trend: vec![],
            la_trends: BTreeMap::new(),
            undelivered: vec![],
            health_rejected: vec![],
            log: LogCheck {
                entries: 0,
                head: "0".repeat(64),
                verified: Ok(()),
            },
        }
    }

    #[test]
    fn needs_action_most_urgent_first_with_what_to_do() {
        let fresh = LaFigures {
            last_extract_at: Some("2026-11-21T02:00:00Z".parse().unwrap()),
            open: [3, 2, 1],
            rejected_by_code: [(Code::NhsCheckDigit, 2), (Code::DateFormat, 1)].into(),
            rows_rejected: 3,
            ucpp_past_edd: 1,
            ..Default::default()
        };
        let late = LaFigures {
            last_extract_at: Some("2026-11-19T01:00:00Z".parse().unwrap()),
            open: [1, 0, 0],
            latest_file: Some(LatestFile {
                name: "CPIS_EXTRACT_202_20261121T020000.csv".into(),
                outcome: "rejected".into(),
                codes: vec![("ERROR_RATE".into(), 1), ("NHS_CHECK_DIGIT".into(), 12)],
            }),
            quarantined: vec![QuarantinedFile {
                id: 4,
                name: "CPIS_EXTRACT_202_20261120T020000.csv".into(),
                reason: "the extract would close 4 of the LA's 5 open records".into(),
            }],
            ..Default::default()
        };
        let n = build(snapshot(vec![
            (la("919"), fresh),
            (la("202"), late),
            (la("330"), LaFigures::default()),
        ]));
        let lines: Vec<String> = n.actions.iter().map(Action::to_string).collect();
        assert_eq!(
            lines,
            [
                "LA 202 Camden: CPIS_EXTRACT_202_20261120T020000.csv is quarantined: the extract would close 4 of the LA's 5 open records: decide it: cpis-gateway quarantine show Q4, then release or reject it",
                "LA 202 Camden: its latest file CPIS_EXTRACT_202_20261121T020000.csv was rejected (ERROR_RATE, NHS_CHECK_DIGIT ×12): tell the LA's data officer: the acknowledgement lists its problems",
                "LA 330 Birmingham: has never sent an extract that could be applied: chase the LA: its export may not be set up, or every file was rejected",
                "LA 202 Camden: no extract for 71 hours (last extracted 2026-11-19 01:00; 36 allowed): chase the LA's data officer",
                "LA 919 Hertfordshire: 1 unborn-child plan(s) still open past the expected delivery date: the LA should end each or give the born child a plan of its own (listed in its CPIS_DQ file)",
            ]
        );
        let order: Vec<String> = n.lines.iter().map(|l| l.la.to_string()).collect();
        assert_eq!(order, ["202", "330", "919"], "needs action first");
        assert_eq!(n.rejected_by_code[&Code::NhsCheckDigit], 2);
        assert_eq!(n.rows_rejected, 3);
        assert_eq!(n.movers, [la("919")]);
        assert_eq!(n.total_open(), 7);
        let csv = String::from_utf8(summary_csv(&n)).unwrap();
        let rows: Vec<&str> = csv.lines().collect();
        assert_eq!(rows.len(), 4);
        assert!(
            rows[1].starts_with(
                "2026-11-21,202,Camden,2026-11-19T01:00:00+00:00,71,true,quarantined,1,0,0,"
            ),
            "{}",
            rows[1]
        );
        assert!(rows[2].starts_with("2026-11-21,330,Birmingham,,,true,never sent,0,0,0,"));
    }

    #[test]
    fn many_las_with_the_same_problem_share_one_line() {
        let codes = ["201", "202", "203", "204", "205", "206"];
        let n = build(snapshot(
            codes
                .iter()
                .map(|c| (la(c), LaFigures::default()))
                .collect(),
        ));
        assert_eq!(n.actions.len(), 1);
        assert_eq!(
            n.actions[0].to_string(),
            "6 LAs have never sent an extract that could be applied: 201, 202, 203, 204, 205, 206: chase the LA: its export may not be set up, or every file was rejected"
        );
        let five = build(snapshot(
            codes[..5]
                .iter()
                .map(|c| (la(c), LaFigures::default()))
                .collect(),
        ));
        assert_eq!(five.actions.len(), 5, "five still get a line each");
        assert!(five.actions.iter().all(|a| a.members.is_empty()));
    }

    #[test]
    fn a_broken_log_comes_first_and_an_empty_snapshot_says_so() {
        let mut s = snapshot(vec![(la("919"), LaFigures::default())]);
        s.log.verified = Err("entry 7 was altered".into());
        let n = build(s);
        assert_eq!(n.actions[0].kind, ActionKind::AuditFailed);
        assert!(n.actions[0].what.contains("entry 7 was altered"));
        assert!(!n.has_data());
    }

    #[test]
    fn dq_rows_are_escaped_and_overdue_is_said() {
        let csv = String::from_utf8(la_dq_csv(&[
            DqItem::Overdue {
                last_extract_at: None,
                hours: None,
                allowed: 36,
            },
            DqItem::Rejected {
                file: "f.csv".into(),
                row: 3,
                column: "local_ref".into(),
                code: "FIELD_TOO_LONG".into(),
                message: "=1+1".into(),
            },
        ]))
        .unwrap();
        assert!(csv.contains("'=1+1"), "{csv}");
        assert!(
            csv.contains("overdue,,,,,,,no extract of yours has been applied yet"),
            "{csv}"
        );
    }
}
