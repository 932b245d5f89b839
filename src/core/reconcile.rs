//! Reconciliation (SPEC 3.1): the pure diff of an LA's records in the store and a valid
//! full extract. Decides every outcome; the store only carries out what it says.

use super::report::Changes;
pub use super::validate::RecordFields;
use super::validate::{PlanRow, RowKey};
use chrono::NaiveDate;
use rustc_hash::{FxHashMap, FxHashSet};

/// A record as the store holds it now: its current version, whether it is open, and the
/// fingerprint of its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredRecord {
    pub version: i64,
    pub key: RowKey,
    pub open: bool,
    pub fingerprint: u64,
}

/// What happens to one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    New,
    Updated,
    Unchanged,
    Ended,
    Reopened,
    ClosedByAbsence,
    Retained,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::New => "new",
            ChangeKind::Updated => "updated",
            ChangeKind::Unchanged => "unchanged",
            ChangeKind::Ended => "ended",
            ChangeKind::Reopened => "reopened",
            ChangeKind::ClosedByAbsence => "closed_by_absence",
            ChangeKind::Retained => "retained",
        }
    }

    /// Whether the version this change replaces was open, given whether the new one is:
    /// an update keeps the record open or closed, an ending or a closure replaces an open
    /// version, a reopening a closed one. (A new record replaces none: `false`.)
    pub fn replaces_open(self, now_open: bool) -> bool {
        match self {
            ChangeKind::Ended | ChangeKind::ClosedByAbsence => true,
            ChangeKind::New | ChangeKind::Reopened => false,
            ChangeKind::Updated | ChangeKind::Unchanged | ChangeKind::Retained => now_open,
        }
    }

    /// Whether the store must write a new version.
    pub fn writes(self) -> bool {
        !matches!(self, ChangeKind::Unchanged | ChangeKind::Retained)
    }
}

/// The next version of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// As the extract states it.
    Fields(RecordFields),
    /// The previous version with this end date (closed by absence).
    EndOn(NaiveDate),
}

/// A change the store must write: supersede `previous` (if any) with `next`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    pub key: RowKey,
    pub previous: Option<i64>,
    pub next: Next,
}

/// The whole diff of one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// Only the changes that write, sorted by key (sorted inserts are much faster).
    pub changes: Vec<Change>,
    pub counts: Changes,
    /// Open records of the LA before the file.
    pub open_before: u64,
    /// The open records kept because a rejected row named them.
    pub retained: Vec<RowKey>,
}

/// Compares the LA's records with a valid extract.
///
/// `retained` are the keys of rejected rows whose NHS number and plan type were valid: an
/// open record they name is kept as it is, never closed by absence.
pub fn reconcile(
    current: &[StoredRecord],
    valid: Vec<PlanRow>,
    retained: &[RowKey],
    extraction_date: NaiveDate,
) -> Diff {
    let by_key: FxHashMap<RowKey, &StoredRecord> = current.iter().map(|r| (r.key, r)).collect();
    let mut seen: FxHashSet<RowKey> = FxHashSet::default();
    seen.reserve(valid.len());
    let mut diff = Diff {
        open_before: current.iter().filter(|r| r.open).count() as u64,
        ..Diff::default()
    };
    for row in valid {
        let key = row.key();
        seen.insert(key);
        let next = row.fields;
        let (kind, previous) = match by_key.get(&key) {
            None => (ChangeKind::New, None),
            Some(stored) => {
                let kind = if stored.fingerprint == next.fingerprint() {
                    ChangeKind::Unchanged
                } else if stored.open && !next.is_open() {
                    ChangeKind::Ended
                } else if !stored.open && next.is_open() {
                    ChangeKind::Reopened
                } else {
                    ChangeKind::Updated
                };
                (kind, Some(stored.version))
            }
        };
        count(&mut diff.counts, kind);
        if kind.writes() {
            diff.changes.push(Change {
                kind,
                key,
                previous,
                next: Next::Fields(next),
            });
        }
    }
    let retained: FxHashSet<RowKey> = retained.iter().copied().collect();
    for stored in current {
        if seen.contains(&stored.key) || !stored.open {
            continue;
        }
        if retained.contains(&stored.key) {
            count(&mut diff.counts, ChangeKind::Retained);
            diff.retained.push(stored.key);
            continue;
        }
        count(&mut diff.counts, ChangeKind::ClosedByAbsence);
        diff.changes.push(Change {
            kind: ChangeKind::ClosedByAbsence,
            key: stored.key,
            previous: Some(stored.version),
            next: Next::EndOn(extraction_date),
        });
    }
    diff.changes.sort_unstable_by_key(|c| c.key);
    diff
}

fn count(c: &mut Changes, kind: ChangeKind) {
    let slot = match kind {
        ChangeKind::New => &mut c.new,
        ChangeKind::Updated => &mut c.updated,
        ChangeKind::Unchanged => &mut c.unchanged,
        ChangeKind::Ended => &mut c.ended,
        ChangeKind::Reopened => &mut c.reopened,
        ChangeKind::ClosedByAbsence => &mut c.closed_by_absence,
        ChangeKind::Retained => &mut c.retained,
    };
    *slot += 1;
}

/// Why a file that would otherwise apply must wait for an operator (SPEC 3.3).
pub fn quarantine_reason(diff: &Diff, valid_rows: u64, max_closure_share: f64) -> Option<String> {
    if diff.open_before == 0 {
        return None;
    }
    if valid_rows == 0 {
        return Some(format!(
            "the extract lists no children while the LA has {} open records: applying it would close them all",
            diff.open_before
        ));
    }
    let closing = diff.counts.closed_by_absence;
    let share = closing as f64 / diff.open_before as f64;
    (share > max_closure_share).then(|| {
        format!(
            "the extract would close {closing} of the LA's {} open records by absence ({:.1}%, more than the {:.0}% allowed)",
            diff.open_before,
            100.0 * share,
            100.0 * max_closure_share
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::nhs::NhsNumber;
    use crate::core::phone::Phone;
    use crate::core::plan::PlanType;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn nhs(i: u64) -> NhsNumber {
        (0..)
            .filter_map(|k| NhsNumber::from_first_nine(999_000_000 + i * 10 + k))
            .next()
            .unwrap()
    }

    fn row(i: u64, start: &str, end: Option<&str>, local_ref: &str) -> PlanRow {
        PlanRow {
            row: i,
            nhs: nhs(i),
            plan_type: PlanType::Cpp,
            fields: RecordFields {
                start: date(start),
                end: end.map(date),
                edt_phone: Phone::parse("01632 960001").unwrap(),
                office_phone: Phone::parse("01632 960002").unwrap(),
                local_ref: Some(local_ref.into()),
                expected_delivery: None,
            },
        }
    }

    fn stored(version: i64, r: &PlanRow) -> StoredRecord {
        let fields = r.fields.clone();
        StoredRecord {
            version,
            key: r.key(),
            open: fields.is_open(),
            fingerprint: fields.fingerprint(),
        }
    }

    #[test]
    fn all_seven_outcomes() {
        let day = date("2026-11-21");
        let before = [
            stored(1, &row(1, "2026-01-01", None, "same")),
            stored(2, &row(2, "2026-01-01", None, "old ref")),
            stored(3, &row(3, "2026-01-01", None, "to end")),
            stored(4, &row(4, "2026-01-01", Some("2026-06-01"), "closed")),
            stored(5, &row(5, "2026-01-01", None, "absent")),
            stored(6, &row(6, "2026-01-01", None, "rejected row")),
            stored(
                7,
                &row(7, "2026-01-01", Some("2026-02-01"), "closed and absent"),
            ),
        ];
        let extract = [
            row(1, "2026-01-01", None, "same"),
            row(2, "2026-01-01", None, "new ref"),
            row(3, "2026-01-01", Some("2026-11-20"), "to end"),
            row(4, "2026-01-01", None, "closed"),
            row(8, "2026-11-01", None, "brand new"),
        ];
        let retained = [row(6, "2026-01-01", None, "").key()];
        let diff = reconcile(&before, extract.to_vec(), &retained, day);
        let c = diff.counts;
        assert_eq!(
            (
                c.new,
                c.updated,
                c.unchanged,
                c.ended,
                c.reopened,
                c.closed_by_absence,
                c.retained
            ),
            (1, 1, 1, 1, 1, 1, 1)
        );
        assert_eq!(diff.open_before, 5);
        let kinds: Vec<(u64, ChangeKind, Option<i64>)> = diff
            .changes
            .iter()
            .map(|c| (c.key.nhs.value(), c.kind, c.previous))
            .collect();
        assert_eq!(kinds.len(), 5, "unchanged and retained write nothing");
        let closed = diff
            .changes
            .iter()
            .find(|c| c.kind == ChangeKind::ClosedByAbsence)
            .unwrap();
        assert_eq!(closed.previous, Some(5));
        assert_eq!(closed.next, Next::EndOn(day));
        assert!(
            diff.changes.windows(2).all(|w| w[0].key <= w[1].key),
            "sorted by key"
        );
    }

    #[test]
    fn each_change_knows_whether_the_version_it_replaces_was_open() {
        let day = date("2026-11-21");
        let before = [
            stored(1, &row(1, "2026-01-01", None, "old")),
            stored(2, &row(2, "2026-01-01", Some("2026-06-01"), "old")),
            stored(3, &row(3, "2026-01-01", None, "to end")),
            stored(4, &row(4, "2026-01-01", Some("2026-06-01"), "to reopen")),
            stored(5, &row(5, "2026-01-01", None, "absent")),
        ];
        let extract = [
            row(1, "2026-01-01", None, "new"),
            row(2, "2026-01-01", Some("2026-06-01"), "new"),
            row(3, "2026-01-01", Some("2026-11-20"), "to end"),
            row(4, "2026-01-01", None, "to reopen"),
        ];
        let diff = reconcile(&before, extract.to_vec(), &[], day);
        let was_open: FxHashMap<RowKey, bool> = before.iter().map(|s| (s.key, s.open)).collect();
        let kinds: Vec<ChangeKind> = diff.changes.iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            [
                ChangeKind::Updated,
                ChangeKind::Updated,
                ChangeKind::Ended,
                ChangeKind::Reopened,
                ChangeKind::ClosedByAbsence
            ]
        );
        for c in &diff.changes {
            let now_open = match &c.next {
                Next::Fields(f) => f.is_open(),
                Next::EndOn(_) => false,
            };
            assert_eq!(c.kind.replaces_open(now_open), was_open[&c.key], "{c:?}");
        }
        assert!(!ChangeKind::New.replaces_open(true));
    }

    #[test]
    fn fingerprints_see_every_field() {
        let base = row(1, "2026-01-01", None, "x").fields;
        let mut variants = vec![base.clone()];
        let mut v = base.clone();
        v.start = date("2026-01-02");
        variants.push(v);
        let mut v = base.clone();
        v.end = Some(date("2026-01-02"));
        variants.push(v);
        let mut v = base.clone();
        v.edt_phone = Phone::parse("01632 960003").unwrap();
        variants.push(v);
        let mut v = base.clone();
        v.office_phone = base.edt_phone;
        variants.push(v);
        let mut v = base.clone();
        v.local_ref = None;
        variants.push(v);
        let mut v = base.clone();
        v.local_ref = Some(String::new());
        variants.push(v);
        let mut v = base.clone();
        v.expected_delivery = Some(date("2026-01-02"));
        variants.push(v);
        let prints: std::collections::HashSet<u64> =
            variants.iter().map(RecordFields::fingerprint).collect();
        assert_eq!(prints.len(), variants.len());
        assert_eq!(base.fingerprint(), base.clone().fingerprint());
        // Stores keep fingerprints: the encoding must never change.
        assert_eq!(base.fingerprint(), 5_686_203_743_475_388_888);
    }

    #[test]
    fn guards() {
        let open: Vec<StoredRecord> = (1..=10)
            .map(|i| stored(i as i64, &row(i, "2026-01-01", None, "x")))
            .collect();
        let day = date("2026-11-21");
        let keep8: Vec<PlanRow> = (1..=8).map(|i| row(i, "2026-01-01", None, "x")).collect();
        let d = reconcile(&open, keep8, &[], day);
        assert_eq!(
            quarantine_reason(&d, 8, 0.2),
            None,
            "20% is not more than 20%"
        );
        let keep7: Vec<PlanRow> = (1..=7).map(|i| row(i, "2026-01-01", None, "x")).collect();
        let d = reconcile(&open, keep7, &[], day);
        assert!(quarantine_reason(&d, 7, 0.2)
            .unwrap()
            .contains("3 of the LA's 10"));
        let d = reconcile(&open, Vec::new(), &[], day);
        assert!(quarantine_reason(&d, 0, 0.2)
            .unwrap()
            .contains("no children"));
        let d = reconcile(&[], Vec::new(), &[], day);
        assert_eq!(
            quarantine_reason(&d, 0, 0.2),
            None,
            "an empty first extract is fine"
        );
    }

    #[test]
    fn a_closed_record_is_not_closed_again_nor_retained() {
        let before = [stored(1, &row(1, "2026-01-01", Some("2026-03-01"), "x"))];
        let diff = reconcile(&before, Vec::new(), &[before[0].key], date("2026-11-21"));
        assert_eq!(diff.counts, Changes::default());
        assert!(diff.changes.is_empty());
    }
}
