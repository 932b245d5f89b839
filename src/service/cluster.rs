//! This process as a node of a cluster: several `run` daemons on one PostgreSQL store and
//! one shared root (mailboxes, archive and reports on shared storage). Work is shared by
//! leases in the store (see `store::leases`): each mailbox is served by the one node that
//! holds its lease; the notification flush, the nightly report and each remote are done
//! under a lease claimed for the time it takes. Each node serves its fair share of the
//! mailboxes (the mailboxes divided by the nodes alive, rounded up), giving back any
//! beyond it, so a node that joins gets work and a node that dies loses its share when
//! its leases expire (one lease period), for the others to take.
//!
//! On an SQLite store there is one daemon per root (the root's lock) and no node.

use crate::store::{Guard, Store};
use crate::sys::node::{died_here, node_name};
use anyhow::Result;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The lease of a piece of work.
pub fn lease_of_mailbox(mailbox: &crate::core::ids::MailboxId) -> String {
    format!("mailbox:{mailbox}")
}

/// How many mailboxes each of `nodes` live nodes serves: all of them, shared out, rounded up.
pub fn fair_share(work: usize, nodes: usize) -> usize {
    work.div_ceil(nodes.max(1))
}

/// Which of the leases held (by name) to give back to come down to `fair`: the last ones.
pub fn beyond_share(held: &[String], fair: usize) -> &[String] {
    &held[fair.min(held.len())..]
}

/// This node: its name, and the mailbox leases it holds (with their fences).
pub struct Node {
    pub name: String,
    started_at: String,
    ttl: Duration,
    last_beat: Option<Instant>,
    held: BTreeMap<String, i64>,
}

impl Node {
    /// This process as a node: `host:pid`, leases lasting `ttl`.
    pub fn new(ttl: Duration, started_at: String) -> Node {
        Node {
            name: node_name(),
            started_at,
            ttl,
            last_beat: None,
            held: BTreeMap::new(),
        }
    }

    /// Says it is alive, renews what it holds, gives back what is beyond its share and
    /// takes free mailboxes up to it. Does the work at most every third of a lease
    /// period unless `now`; returns whether it took a mailbox (to be looked at now).
    pub fn beat(&mut self, store: &mut Store, mailboxes: &[String], now: bool) -> Result<bool> {
        if !now && self.last_beat.is_some_and(|t| t.elapsed() < self.ttl / 3) {
            return Ok(false);
        }
        self.last_beat = Some(Instant::now());
        let mut took = false;
        store.node_seen(&self.name, &self.started_at)?;
        let still: Vec<String> = store.renew(&self.name, self.ttl)?;
        self.held.retain(|lease, _| still.contains(lease));
        // Alive: seen within a lease period (a node says so three times in one).
        let alive = store
            .nodes_seen(self.ttl)?
            .iter()
            .filter(|n| !died_here(&n.name))
            .count();
        let fair = fair_share(mailboxes.len(), alive);
        let mine: Vec<String> = self.held.keys().cloned().collect();
        for lease in beyond_share(&mine, fair) {
            store.release(lease, &self.name)?;
            self.held.remove(lease);
            tracing::info!(node = %self.name, lease = %lease, "gave a mailbox back (beyond this node's share)");
        }
        if self.held.len() < fair {
            // Held by a live node: not free. Held by a node of this machine that is no
            // longer running (this daemon before a crash): free now, not at its expiry.
            let taken: std::collections::HashSet<String> = store
                .held_leases()?
                .into_iter()
                .filter(|(_, owner)| !died_here(owner))
                .map(|(l, _)| l)
                .collect();
            for lease in mailboxes.iter().filter(|l| !taken.contains(*l)) {
                if self.held.len() >= fair {
                    break;
                }
                if let Some(guard) = self.claim(store, lease)? {
                    tracing::info!(node = %self.name, lease = %lease, fence = guard.fence, "took a mailbox");
                    self.held.insert(guard.lease, guard.fence);
                    took = true;
                }
            }
        }
        Ok(took)
    }

    /// The guard for writes from `lease`, if this node holds it.
    pub fn guard(&self, lease: &str) -> Option<Guard> {
        self.held.get(lease).map(|fence| Guard {
            lease: lease.to_owned(),
            owner: self.name.clone(),
            fence: *fence,
        })
    }

    /// Claims `lease` (a mailbox, or a piece of work done now: the flush, the report, a
    /// remote's poll): its guard, or `None` while another node holds it. A lease held by a
    /// gateway of this machine that is no longer running is taken over at once.
    pub fn claim(&self, store: &mut Store, lease: &str) -> Result<Option<Guard>> {
        crate::store::claim_or_take_over(store, lease, &self.name, self.ttl)
    }

    /// Gives back every lease (a clean stop): the others take them at once.
    pub fn leave(&mut self, store: &mut Store) -> Result<()> {
        let held: Vec<String> = std::mem::take(&mut self.held).into_keys().collect();
        store.release_all(&held, &self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mailboxes_are_shared_out_rounded_up() {
        assert_eq!(fair_share(158, 1), 158);
        assert_eq!(fair_share(158, 2), 79);
        assert_eq!(fair_share(6, 4), 2);
        assert_eq!(fair_share(6, 0), 6, "no node seen yet: this one takes all");
        let held: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        assert_eq!(beyond_share(&held, 2), ["c".to_string()]);
        assert!(beyond_share(&held, 5).is_empty());
    }
}
