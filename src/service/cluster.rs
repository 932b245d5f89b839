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

use crate::store::{Guard, Location, Store};
use crate::sys::node::{died_here, node_name};
use anyhow::Result;
use std::collections::BTreeMap;
use std::sync::Arc;
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
        claim_or_take_over(store, lease, &self.name, self.ttl)
    }

    /// Gives back every lease (a clean stop): the others take them at once.
    pub fn leave(&mut self, store: &mut Store) -> Result<()> {
        for lease in std::mem::take(&mut self.held).keys() {
            store.release(lease, &self.name)?;
        }
        Ok(())
    }
}

/// Claims `lease` for `owner`, taking it over at once from a gateway of this machine that is
/// no longer running: its guard, or `None` while someone else holds it.
fn claim_or_take_over(
    store: &mut Store,
    lease: &str,
    owner: &str,
    ttl: Duration,
) -> Result<Option<Guard>> {
    if let Some(guard) = store.claim(lease, owner, ttl)? {
        return Ok(Some(guard));
    }
    let dead: Vec<String> = store
        .held_leases()?
        .into_iter()
        .filter(|(l, holder)| l == lease && died_here(holder))
        .map(|(_, holder)| holder)
        .collect();
    for holder in dead {
        if let Some(guard) = store.take_over(lease, owner, &holder, ttl)? {
            tracing::info!(node = %owner, lease, dead = %holder, "took over a lease from a gateway of this machine that is no longer running");
            return Ok(Some(guard));
        }
    }
    Ok(None)
}

/// What the keeper is asked to do besides renewing.
enum Command {
    /// Give back the holding this guard stands for (a turn that ended).
    Release(Guard),
}

/// This process's leases kept alive: a thread with a connection of its own renews every
/// lease this node holds every third of a lease period, whatever the node is busy with (a
/// long poll of a slow remote, a large file's transaction), so renewing never waits behind
/// the write it protects; it also gives back turns that end. A node that stops (killed, or
/// frozen by the system) stops renewing, and the others take its work when its leases
/// expire.
pub struct Keeper {
    commands: std::sync::Mutex<std::sync::mpsc::Sender<Command>>,
}

static KEEPER: std::sync::OnceLock<Keeper> = std::sync::OnceLock::new();

/// The process's keeper, started by the first call (a PostgreSQL store only).
pub fn keeper(location: &Location, ttl: Duration) -> &'static Keeper {
    KEEPER.get_or_init(|| Keeper::start(location.clone(), node_name(), ttl))
}

impl Keeper {
    fn start(location: Location, node: String, ttl: Duration) -> Keeper {
        let (send, receive) = std::sync::mpsc::channel::<Command>();
        std::thread::spawn(move || {
            let mut store: Option<Store> = None;
            let mut next_renewal = Instant::now();
            loop {
                let wait = next_renewal.saturating_duration_since(Instant::now());
                let command = match receive.recv_timeout(wait) {
                    Ok(c) => Some(c),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                };
                let done = (|| -> Result<()> {
                    if store.is_none() {
                        store = Some(Store::open_at(&location)?);
                    }
                    let s = store.as_mut().expect("just opened");
                    match &command {
                        Some(Command::Release(guard)) => s.release_guard(guard),
                        None => s.renew(&node, ttl).map(|_| ()),
                    }
                })();
                if let Err(e) = done {
                    tracing::warn!(node = %node, error = %format!("{e:#}"), "cannot renew or give back this node's leases: trying again");
                    store = None;
                }
                if command.is_none() {
                    next_renewal = Instant::now() + ttl / 3;
                }
            }
        });
        Keeper {
            commands: std::sync::Mutex::new(send),
        }
    }

    fn release(&self, guard: Guard) {
        if let Ok(send) = self.commands.lock() {
            let _ = send.send(Command::Release(guard));
        }
    }
}

/// One writer's turn at deciding and committing for one mailbox (or the report's data-
/// quality files): whoever decides whether a file is a duplicate, stale or applicable
/// must see every earlier decision of that mailbox, so two writers (a node and an operator's
/// `ingest`, `replay` or `quarantine`) never decide at once. On SQLite, the root's write
/// lock (one machine). On PostgreSQL, a lease in the store, `turn:<name>`: waited for at
/// most two lease periods, renewed by the keeper, checked by every write made during it,
/// given back when the turn ends; a writer frozen mid-turn holds the others up only until
/// its lease expires, and its late writes are refused. Nothing relies on a file lock shared
/// between machines.
pub struct Turn {
    inner: TurnInner,
}

enum TurnInner {
    File {
        _lock: crate::sys::fsutil::WriteLock,
    },
    Lease {
        guard: Guard,
        turns: Arc<std::sync::Mutex<Vec<Guard>>>,
        keeper: &'static Keeper,
    },
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let TurnInner::Lease {
            guard,
            turns,
            keeper,
        } = &self.inner
        {
            if let Ok(mut held) = turns.lock() {
                held.retain(|g| g != guard);
            }
            keeper.release(guard.clone());
        }
    }
}

/// Waits for, then takes, the turn `name` (a mailbox, or `report`).
pub fn take_turn(store: &mut Store, config: &crate::config::Config, name: &str) -> Result<Turn> {
    if config.postgres.is_none() {
        let lock = crate::sys::fsutil::write_lock(
            &crate::sys::layout::Layout::new(&config.root).write_lock(),
        )?;
        return Ok(Turn {
            inner: TurnInner::File { _lock: lock },
        });
    }
    let keeper = keeper(&config.store_location(), config.lease);
    let (lease, owner) = (format!("turn:{name}"), node_name());
    let deadline = Instant::now() + config.lease * 2;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(guard) = claim_or_take_over(store, &lease, &owner, config.lease)? {
            let turns = store.turns();
            turns
                .lock()
                .map_err(|_| anyhow::anyhow!("the turns' list is poisoned"))?
                .push(guard.clone());
            return Ok(Turn {
                inner: TurnInner::Lease {
                    guard,
                    turns,
                    keeper,
                },
            });
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "another writer has held {lease} for two lease periods ({} s): this is tried again later",
                (config.lease * 2).as_secs()
            );
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
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
