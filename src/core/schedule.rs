//! When the nightly report runs: the next instant at `report_time` in the configured time
//! zone, across clock changes (a local time that does not exist runs at the end of the gap;
//! one that happens twice runs the first time).

use chrono::{DateTime, Duration, LocalResult, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// The first instant strictly after `now` at local `time` in `tz`.
pub fn next_run(now: DateTime<Utc>, time: NaiveTime, tz: Tz) -> DateTime<Utc> {
    let mut date = now.with_timezone(&tz).date_naive();
    loop {
        let mut local = date.and_time(time);
        // A time inside a spring-forward gap: move on to the first minute that exists.
        let at = loop {
            match tz.from_local_datetime(&local) {
                LocalResult::Single(t) => break t,
                LocalResult::Ambiguous(first, _) => break first,
                LocalResult::None => local += Duration::minutes(1),
            }
        };
        let at = at.with_timezone(&Utc);
        if at > now {
            return at;
        }
        date = date.succ_opt().unwrap_or(date);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::London;

    fn check(now: &str, time: &str, expect: &str) {
        let now: DateTime<Utc> = now.parse().unwrap();
        let time = NaiveTime::parse_from_str(time, "%H:%M").unwrap();
        assert_eq!(
            next_run(now, time, London).to_rfc3339(),
            expect,
            "now {now}, {time}"
        );
    }

    #[test]
    fn ordinary_nights() {
        check("2026-11-22T09:00:00Z", "02:00", "2026-11-23T02:00:00+00:00");
        check("2026-11-22T01:59:59Z", "02:00", "2026-11-22T02:00:00+00:00");
        check("2026-11-22T02:00:00Z", "02:00", "2026-11-23T02:00:00+00:00");
        check("2026-07-01T12:00:00Z", "02:00", "2026-07-02T01:00:00+00:00");
    }

    #[test]
    fn clock_changes() {
        // Spring forward, 2027-03-28: 01:00 GMT becomes 02:00 BST. 02:00 BST is 01:00 UTC.
        check("2027-03-27T12:00:00Z", "02:00", "2027-03-28T01:00:00+00:00");
        // 01:30 does not exist that night: the report runs when the gap ends.
        check("2027-03-27T12:00:00Z", "01:30", "2027-03-28T01:00:00+00:00");
        // Fall back, 2026-10-25: 01:30 happens twice; the first (BST, 00:30 UTC) wins.
        check("2026-10-24T12:00:00Z", "01:30", "2026-10-25T00:30:00+00:00");
        // ...and it does not run again at the second 01:30.
        check("2026-10-25T00:30:00Z", "01:30", "2026-10-26T01:30:00+00:00");
        check("2026-10-24T12:00:00Z", "02:00", "2026-10-25T02:00:00+00:00");
    }
}
