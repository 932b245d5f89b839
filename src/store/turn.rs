//! Whose turn it is: one writer at a time deciding for a mailbox (`Turn`), and the keeper
//! that renews a process's leases from a thread of its own. On SQLite a turn is the root's
//! write lock; on PostgreSQL a lease in the store, so no file lock is shared between
//! machines.

use super::{Guard, Location, Store};
use crate::sys::node::{died_here, node_name};
use anyhow::Result;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Claims `lease` for `owner`, taking it over at once from a gateway of this machine that is
/// no longer running: its guard, or `None` while someone else holds it.
pub fn claim_or_take_over(
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

/// Waits for, then takes, the turn `name` (a mailbox, `notifications`, `report`): on
/// SQLite the root's write lock `root_lock`, on PostgreSQL a lease of `ttl`.
pub fn take_turn(store: &mut Store, name: &str, root_lock: &Path, ttl: Duration) -> Result<Turn> {
    let location = match store.location() {
        Location::Sqlite(_) => {
            let lock = crate::sys::fsutil::write_lock(root_lock)?;
            return Ok(Turn {
                inner: TurnInner::File { _lock: lock },
            });
        }
        pg => pg.clone(),
    };
    let keeper = keeper(&location, ttl);
    let (lease, owner) = (format!("turn:{name}"), node_name());
    let deadline = Instant::now() + ttl * 2;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(guard) = claim_or_take_over(store, &lease, &owner, ttl)? {
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
                (ttl * 2).as_secs()
            );
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}
