//! A child's earlier presentations as one file's look-ups see them: the ones read from the
//! store up front and the ones the file itself adds, answering the two questions a look-up
//! asks (SPEC 4.2, 4.3) without a round trip per row.
//!
//! Times are the store's own text (`store::ts`: fixed width, so text order is time order),
//! and ties go to the higher id, exactly as the store's `ORDER BY attended_at DESC, id DESC`.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// How many unscheduled-care presentations a flag shows.
pub const PRESENTATIONS_SHOWN: usize = 25;

/// A presentation as the look-ups need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presentation {
    pub id: i64,
    pub nhs: i64,
    pub attended_at: String,
    pub org_ods: String,
    pub org_name: String,
    pub setting: String,
    pub unscheduled: bool,
    pub user_name: String,
}

/// A presentation as shown to another health professional: never staff names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PresentationView {
    pub attended_at: String,
    pub org_ods: String,
    pub org_name: String,
    pub setting: String,
}

/// Presentations of the children a file names.
#[derive(Debug, Default)]
pub struct Seen {
    /// Unscheduled presentations per child, by (time, id).
    unscheduled: HashMap<i64, BTreeMap<(String, i64), PresentationView>>,
    /// When each child was seen by each user at each organisation.
    by_user: HashMap<(i64, String, String), BTreeSet<String>>,
}

impl Seen {
    pub fn add(&mut self, p: Presentation) {
        self.by_user
            .entry((p.nhs, p.org_ods.clone(), p.user_name))
            .or_default()
            .insert(p.attended_at.clone());
        if p.unscheduled {
            self.unscheduled.entry(p.nhs).or_default().insert(
                (p.attended_at.clone(), p.id),
                PresentationView {
                    attended_at: p.attended_at,
                    org_ods: p.org_ods,
                    org_name: p.org_name,
                    setting: p.setting,
                },
            );
        }
    }

    /// The child's last `limit` unscheduled presentations at or before `until`, newest
    /// first.
    pub fn recent(&self, nhs: i64, limit: usize, until: &str) -> Vec<PresentationView> {
        let Some(all) = self.unscheduled.get(&nhs) else {
            return Vec::new();
        };
        all.range(..=(until.to_owned(), i64::MAX))
            .rev()
            .take(limit)
            .map(|(_, shown)| shown.clone())
            .collect()
    }

    /// Whether `user` at `org` saw the child at a time in `since..=until`.
    pub fn seen_by(&self, nhs: i64, org: &str, user: &str, since: &str, until: &str) -> bool {
        if since > until {
            return false;
        }
        self.by_user
            .get(&(nhs, org.to_owned(), user.to_owned()))
            .is_some_and(|times| {
                times
                    .range::<str, _>((
                        std::ops::Bound::Included(since),
                        std::ops::Bound::Included(until),
                    ))
                    .next()
                    .is_some()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: i64, nhs: i64, at: &str, org: &str, user: &str, unscheduled: bool) -> Presentation {
        Presentation {
            id,
            nhs,
            attended_at: at.to_owned(),
            org_ods: org.to_owned(),
            org_name: format!("{org} hospital"),
            setting: if unscheduled { "ED" } else { "OPD" }.to_owned(),
            unscheduled,
            user_name: user.to_owned(),
        }
    }

    fn times(shown: &[PresentationView]) -> Vec<String> {
        shown
            .iter()
            .map(|s| format!("{}@{}", s.attended_at, s.org_ods))
            .collect()
    }

    #[test]
    fn recent_is_newest_first_up_to_the_moment_asked_about_and_ties_go_to_the_later_id() {
        let mut seen = Seen::default();
        seen.add(p(1, 9, "2026-01-01T10:00:00.000Z", "RA", "u", true));
        seen.add(p(5, 9, "2026-01-03T10:00:00.000Z", "RB", "u", true));
        seen.add(p(3, 9, "2026-01-02T10:00:00.000Z", "RC", "u", true));
        seen.add(p(4, 9, "2026-01-02T10:00:00.000Z", "RD", "u", true));
        seen.add(p(6, 9, "2026-01-02T11:00:00.000Z", "RE", "u", false));
        seen.add(p(7, 8, "2026-01-02T10:00:00.000Z", "RF", "u", true));
        let check = |until: &str, limit: usize, expect: &[&str]| {
            assert_eq!(
                times(&seen.recent(9, limit, until)),
                expect,
                "{until} {limit}"
            );
        };
        check(
            "2026-01-02T10:00:00.000Z",
            25,
            &[
                "2026-01-02T10:00:00.000Z@RD",
                "2026-01-02T10:00:00.000Z@RC",
                "2026-01-01T10:00:00.000Z@RA",
            ],
        );
        check(
            "2026-01-09T00:00:00.000Z",
            2,
            &["2026-01-03T10:00:00.000Z@RB", "2026-01-02T10:00:00.000Z@RD"],
        );
        check("2025-12-31T00:00:00.000Z", 25, &[]);
        assert!(seen.recent(7, 25, "2027-01-01T00:00:00.000Z").is_empty());
    }

    #[test]
    fn seen_by_is_the_same_user_at_the_same_organisation_within_the_window_inclusive() {
        let mut seen = Seen::default();
        seen.add(p(1, 9, "2026-01-02T10:00:00.000Z", "RA", "ann", false));
        let check = |org: &str, user: &str, since: &str, until: &str, expect: bool| {
            assert_eq!(
                seen.seen_by(9, org, user, since, until),
                expect,
                "{org} {user} {since} {until}"
            );
        };
        check(
            "RA",
            "ann",
            "2026-01-01T10:00:00.000Z",
            "2026-01-02T10:00:00.000Z",
            true,
        );
        check(
            "RA",
            "ann",
            "2026-01-02T10:00:00.000Z",
            "2026-01-03T10:00:00.000Z",
            true,
        );
        check(
            "RA",
            "ann",
            "2026-01-02T10:00:00.001Z",
            "2026-01-03T10:00:00.000Z",
            false,
        );
        check(
            "RA",
            "ann",
            "2026-01-01T00:00:00.000Z",
            "2026-01-02T09:59:59.999Z",
            false,
        );
        check(
            "RA",
            "bob",
            "2026-01-01T10:00:00.000Z",
            "2026-01-02T10:00:00.000Z",
            false,
        );
        check(
            "RB",
            "ann",
            "2026-01-01T10:00:00.000Z",
            "2026-01-02T10:00:00.000Z",
            false,
        );
        check(
            "RA",
            "ann",
            "2026-01-03T00:00:00.000Z",
            "2026-01-01T00:00:00.000Z",
            false,
        );
        assert!(!seen.seen_by(
            8,
            "RA",
            "ann",
            "2026-01-01T00:00:00.000Z",
            "2027-01-01T00:00:00.000Z"
        ));
    }
}
