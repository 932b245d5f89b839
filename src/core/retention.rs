//! Retention: whether a kept file has outlived its time. Pure: ages come in as arguments.

use chrono::{DateTime, Duration, NaiveDate, Utc};

/// What a file is, for retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// An archived inbound file, by when it was last processed; `pinned` when the registry
    /// says it must stay (not settled, or waiting in quarantine).
    Archive { pinned: bool },
    /// A file delivered from an outbox (`out/sent/`), by its time.
    Sent,
    /// A day's report folder, by its date.
    Report,
    /// An inbound entry refused unread (`rejected/`), by its time.
    Rejected,
}

/// Whether something of `kind`, dated `at`, is past `days` at `now`.
pub fn expired(kind: Kept, at: DateTime<Utc>, days: u32, now: DateTime<Utc>) -> bool {
    !matches!(kind, Kept::Archive { pinned: true }) && now - at > Duration::days(i64::from(days))
}

/// A report folder's date at its end (a day's report is kept `days` after that day).
pub fn report_day_end(day: NaiveDate) -> DateTime<Utc> {
    (day + Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .map_or(DateTime::<Utc>::MIN_UTC, |t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn old_things_go_pinned_ones_never() {
        let now = at("2027-03-01T00:00:00Z");
        let old = at("2026-11-01T00:00:00Z");
        let young = at("2027-02-20T00:00:00Z");
        assert!(expired(Kept::Archive { pinned: false }, old, 90, now));
        assert!(!expired(Kept::Archive { pinned: true }, old, 90, now));
        assert!(!expired(Kept::Sent, young, 30, now));
        assert!(expired(Kept::Rejected, old, 30, now));
        let day = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        assert!(expired(
            Kept::Report,
            report_day_end(day),
            400,
            at("2027-02-06T00:00:01Z")
        ));
        assert!(!expired(
            Kept::Report,
            report_day_end(day),
            400,
            at("2027-02-05T00:00:00Z")
        ));
    }
}
