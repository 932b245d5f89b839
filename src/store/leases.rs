//! Several gateway nodes on one store: the nodes seen, and leases. Each piece of work that
//! must happen on one node at a time (a mailbox, a remote, the notification flush, the
//! nightly report) is a lease: a row with its owner, its expiry (by the database's clock)
//! and a fencing counter that grows each time a free lease is claimed. A node renews what it
//! holds while it lives (`turn::Keeper`); a node that dies loses its leases when they
//! expire, and another takes them. Writes made under a lease carry a [`Guard`]: the write
//! transaction checks, under the store's write lock, that nobody has claimed the lease
//! since (its fence), so a node that stalled writes nothing once another has taken over.

use super::db::{args, Sql, Tx};
use super::dialect::NOW_MS;
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
    /// Fails unless nobody else took the lease since it was claimed: it still names its
    /// owner with the same fence (inside `tx`, which holds the write lock: no one can take
    /// it over before the commit). A lease that merely expired, with nobody taking it
    /// meanwhile, still lets its owner finish: what fences a slow node out is another
    /// node's claim (which moves the fence), not the clock.
    pub(crate) fn check(&self, tx: &mut Tx<'_>) -> Result<()> {
        let held = tx
            .row(
                "SELECT 1 FROM leases WHERE name = ?1 AND owner = ?2 AND fence = ?3",
                args![self.lease, self.owner, self.fence],
            )?
            .is_some();
        if !held {
            bail!(
                "this node ({}) lost its lease on {} (another node took it over): nothing was written; the node holding it now does this work",
                self.owner,
                self.lease
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
                "INSERT INTO leases (name, owner, expires_ms, fence) VALUES (?1, ?2, {NOW_MS} + ?3, 1)
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
                 WHERE name = ?1 AND owner = ?3 RETURNING fence"
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
                 WHERE owner = ?1 AND expires_ms > {NOW_MS}"
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
        self.db().execute(
            "UPDATE leases SET expires_ms = 0 WHERE name = ?1 AND owner = ?2",
            args![lease, owner],
        )?;
        Ok(())
    }

    /// Gives up the holding `guard` stands for, and no later one.
    pub fn release_guard(&mut self, guard: &Guard) -> Result<()> {
        self.db().execute(
            "UPDATE leases SET expires_ms = 0 WHERE name = ?1 AND owner = ?2 AND fence = ?3",
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
