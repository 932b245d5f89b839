//! Several gateway nodes on one store: the nodes seen, and leases. Each piece of work that
//! must happen on one node at a time (a mailbox, a remote, the notification flush, the
//! nightly report) is a lease: a row with its owner, its expiry (by the database's clock)
//! and a fencing counter that grows each time a free lease is claimed. A node renews what it
//! holds while it lives (`turn::Keeper`); a node that dies loses its leases when they
//! expire, and another takes them. Writes made under a lease carry a [`Guard`]: the write
//! transaction checks, under the store's write lock, that nobody has claimed the lease
//! since (its fence), so a node that stalled writes nothing once another has taken over.
//!
//! Claims, renewals and releases are committed without waiting for the disk (on
//! PostgreSQL: two to four a file, each a flush of its own otherwise). A crash of the
//! database may lose the last of them, and that is harmless:
//! - a lost renewal or release only makes the lease end sooner or later than asked: what
//!   fences a writer out is another claim moving the fence, never the clock;
//! - a lost claim leaves the lease as it was before it. Its holder's writes are refused
//!   (its guard names a fence the lease no longer has), unless one of them committed, and
//!   a commit that waits for the disk makes every earlier commit durable with it (the log
//!   is written in order), the claim included. Claimed again after the crash, the fence
//!   may be handed out a second time, but only to whoever claims it then; a guard of the
//!   lost holding passes only if that is the same owner, which names one process (host and
//!   process id), and one process claiming what it holds gets its own fence back anyway;
//!   the holder before the lost claim finds its guard passing again, as if the claim had
//!   never been made.

use super::db::{args, Sql, Tx};
use super::dialect::{NOW_MS, UNSYNCED};
use super::Store;
use anyhow::{bail, Result};
use serde::Serialize;
use std::time::Duration;

/// A lease held, to be checked by every write made under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    pub lease: String,
    pub owner: String,
    pub fence: i64,
}

/// A lease as `status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LeaseView {
    pub name: String,
    pub owner: String,
    /// Milliseconds until it expires (negative: expired, free to take).
    pub expires_in_ms: i64,
    pub fence: i64,
}

/// A node as `status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    pub name: String,
    pub started_at: String,
    /// Milliseconds since it last said it was alive.
    pub seen_ms_ago: i64,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

impl Guard {
    /// Fails unless nobody else took any of `guards`' leases since they were claimed: each
    /// still names its owner with the same fence (inside `tx`, which holds the write lock),
    /// all checked by one statement. A lease that merely expired, with nobody taking it
    /// meanwhile, still lets its owner finish: what fences a slow node out is another
    /// node's claim (which moves the fence), not the clock.
    pub(crate) fn check_all(guards: &[Guard], tx: &mut Tx<'_>) -> Result<()> {
        if guards.is_empty() {
            return Ok(());
        }
        let wanted: Vec<String> = (0..guards.len())
            .map(|i| {
                let at = 3 * i + 1;
                format!(
                    "(name = ?{at} AND owner = ?{} AND fence = ?{})",
                    at + 1,
                    at + 2
                )
            })
            .collect();
        let params: Vec<&dyn super::db::Param> = guards
            .iter()
            .flat_map(|g| [&g.lease as &dyn super::db::Param, &g.owner, &g.fence])
            .collect();
        let mut held: Vec<(String, String, i64)> = Vec::new();
        tx.each_row(
            &format!(
                "SELECT name, owner, fence FROM leases WHERE {}",
                wanted.join(" OR ")
            ),
            &params,
            &mut |r| {
                held.push((r.get(0)?, r.get(1)?, r.get(2)?));
                Ok(())
            },
        )?;
        // Each guard whole: two holdings of one lease (an older one among them) are told apart.
        let still = |g: &Guard| {
            held.iter()
                .any(|(l, o, f)| *l == g.lease && *o == g.owner && *f == g.fence)
        };
        if let Some(lost) = guards.iter().find(|g| !still(g)) {
            bail!(
                "this node ({}) lost its lease on {} (another node took it over): nothing was written; the node holding it now does this work",
                lost.owner,
                lost.lease
            );
        }
        Ok(())
    }
}

impl Store {
    /// Claims `lease` for `owner` for `ttl`, or renews it if `owner` holds it: its guard,
    /// or `None` while another node holds it. A claim of a lease that was free (expired or
    /// given back) moves its fence, whoever held it before: a guard from an earlier holding
    /// never passes again.
    pub fn claim(&mut self, lease: &str, owner: &str, ttl: Duration) -> Result<Option<Guard>> {
        let fence: Option<i64> = self.db().value(
            &format!(
                "INSERT INTO leases (name, owner, expires_ms, fence)
                 SELECT ?1, ?2, {NOW_MS} + ?3, 1 FROM {UNSYNCED} WHERE true
                 ON CONFLICT (name) DO UPDATE SET
                     fence = CASE WHEN leases.owner = excluded.owner AND leases.expires_ms > {NOW_MS}
                                  THEN leases.fence ELSE leases.fence + 1 END,
                     owner = excluded.owner,
                     expires_ms = excluded.expires_ms
                 WHERE leases.owner = excluded.owner OR leases.expires_ms <= {NOW_MS}
                 RETURNING fence"
            ),
            args![lease, owner, ms(ttl)],
        )?;
        Ok(fence.map(|fence| Guard {
            lease: lease.to_owned(),
            owner: owner.to_owned(),
            fence,
        }))
    }

    /// Takes `lease` over from `dead` (a node known to have died), whatever its expiry:
    /// its guard, or `None` if `dead` no longer holds it.
    pub fn take_over(
        &mut self,
        lease: &str,
        owner: &str,
        dead: &str,
        ttl: Duration,
    ) -> Result<Option<Guard>> {
        let fence: Option<i64> = self.db().value(
            &format!(
                "UPDATE leases SET owner = ?2, fence = fence + 1, expires_ms = {NOW_MS} + ?4
                 FROM {UNSYNCED} WHERE name = ?1 AND owner = ?3 RETURNING fence"
            ),
            args![lease, owner, dead, ms(ttl)],
        )?;
        Ok(fence.map(|fence| Guard {
            lease: lease.to_owned(),
            owner: owner.to_owned(),
            fence,
        }))
    }

    /// Renews every lease `owner` still holds; their names.
    pub fn renew(&mut self, owner: &str, ttl: Duration) -> Result<Vec<String>> {
        self.db().execute(
            &format!(
                "UPDATE leases SET expires_ms = {NOW_MS} + ?2
                 FROM {UNSYNCED} WHERE owner = ?1 AND expires_ms > {NOW_MS}"
            ),
            args![owner, ms(ttl)],
        )?;
        self.db().column(
            &format!(
                "SELECT name FROM leases WHERE owner = ?1 AND expires_ms > {NOW_MS} ORDER BY name"
            ),
            args![owner],
        )
    }

    /// Gives up `lease` (if `owner` holds it), for another node to take at once.
    pub fn release(&mut self, lease: &str, owner: &str) -> Result<()> {
        self.release_all(&[lease.to_owned()], owner)
    }

    /// Gives up every one of `leases` that `owner` holds, a statement for many.
    pub fn release_all(&mut self, leases: &[String], owner: &str) -> Result<()> {
        for chunk in leases.chunks(super::db::KEYS_PER_STATEMENT) {
            let chunk = super::db::padded(chunk);
            let mut params: Vec<&dyn super::db::Param> = vec![&owner];
            params.extend(chunk.iter().map(|l| l as &dyn super::db::Param));
            self.db().execute(
                &format!(
                    "UPDATE leases SET expires_ms = 0 FROM {UNSYNCED}
                     WHERE owner = ?1 AND name IN ({})",
                    super::db::marks(2, chunk.len())
                ),
                &params,
            )?;
        }
        Ok(())
    }

    /// Gives up the holding `guard` stands for, and no later one.
    pub fn release_guard(&mut self, guard: &Guard) -> Result<()> {
        self.db().execute(
            &format!(
                "UPDATE leases SET expires_ms = 0 FROM {UNSYNCED}
                 WHERE name = ?1 AND owner = ?2 AND fence = ?3"
            ),
            args![guard.lease, guard.owner, guard.fence],
        )?;
        Ok(())
    }

    /// The leases held now by anyone: (name, owner).
    pub fn held_leases(&mut self) -> Result<Vec<(String, String)>> {
        self.db()
            .rows(
                &format!(
                    "SELECT name, owner FROM leases WHERE expires_ms > {NOW_MS} ORDER BY name"
                ),
                args![],
            )?
            .iter()
            .map(|r| Ok((r.get(0)?, r.get(1)?)))
            .collect()
    }

    /// Every lease, held or not, for `status`.
    pub fn leases(&mut self) -> Result<Vec<LeaseView>> {
        self.db()
            .rows(
                &format!(
                    "SELECT name, owner, expires_ms - {NOW_MS}, fence FROM leases ORDER BY name"
                ),
                args![],
            )?
            .iter()
            .map(|r| {
                Ok(LeaseView {
                    name: r.get(0)?,
                    owner: r.get(1)?,
                    expires_in_ms: r.get(2)?,
                    fence: r.get(3)?,
                })
            })
            .collect()
    }

    /// Records that `node` (started at `started_at`) is alive now.
    pub fn node_seen(&mut self, node: &str, started_at: &str) -> Result<()> {
        self.db().execute(
            &format!(
                "INSERT INTO nodes (name, started_at, seen_ms) VALUES (?1, ?2, {NOW_MS})
                 ON CONFLICT (name) DO UPDATE SET seen_ms = excluded.seen_ms,
                     started_at = excluded.started_at"
            ),
            args![node, started_at],
        )?;
        Ok(())
    }

    /// The nodes seen within `within`, most recently seen first.
    pub fn nodes_seen(&mut self, within: Duration) -> Result<Vec<NodeView>> {
        self.db()
            .rows(
                &format!(
                    "SELECT name, started_at, {NOW_MS} - seen_ms FROM nodes
                     WHERE seen_ms > {NOW_MS} - ?1 ORDER BY seen_ms DESC, name"
                ),
                args![ms(within)],
            )?
            .iter()
            .map(|r| {
                Ok(NodeView {
                    name: r.get(0)?,
                    started_at: r.get(1)?,
                    seen_ms_ago: r.get(2)?,
                })
            })
            .collect()
    }

    /// Writes from now on are made under `guard` (each write transaction checks it), or
    /// under none.
    pub fn set_guard(&mut self, guard: Option<Guard>) {
        self.guard = guard;
    }

    /// The write turns this store's writes are made under (see `store::Turn`): shared
    /// with each turn, which takes itself out when it ends.
    pub fn turns(&self) -> std::sync::Arc<std::sync::Mutex<Vec<Guard>>> {
        std::sync::Arc::clone(&self.turns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guard_of_an_earlier_holding_is_refused_beside_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("store.sqlite")).unwrap();
        let earlier = store
            .claim("turn:LA919", "host:1", Duration::from_millis(1))
            .unwrap()
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        // Expired, then claimed again (by the same owner): the fence moves.
        let current = store
            .claim("turn:LA919", "host:1", Duration::from_secs(60))
            .unwrap()
            .unwrap();
        assert_eq!(current.fence, earlier.fence + 1);
        let mut tx = store.db().transaction().unwrap();
        Guard::check_all(std::slice::from_ref(&current), &mut tx).unwrap();
        let refused = Guard::check_all(&[earlier, current], &mut tx).unwrap_err();
        assert!(refused.to_string().contains("lost its lease on turn:LA919"));
    }
}
