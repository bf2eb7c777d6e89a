//! Partition leases: which gateway does the once-per-fleet work of which partition of drivers.
//!
//! A JetStream KV bucket (`PREFIX-leases`) whose entries expire after `cluster.lease_ttl_s`
//! holds `node.NAME` heartbeats of the live gateways and `part.P` leases naming the owner of
//! partition `P`. Every `ttl / 3` each gateway renews its heartbeat and its leases
//! (compare-and-set on the revision it holds: a lease it lost is dropped at once), gives back
//! leases above its fair share (`ceil(partitions / live gateways)`, so a gateway that joins
//! gets work), and creates vacant leases up to its share (create fails when the key exists, so
//! two gateways never both win). A gateway that dies stops renewing; its leases expire and the
//! others take them within about `ttl + ttl / 3`.
//!
//! Leases only guard side effects (ticks, webhooks, archiving); the fleet state is folded by
//! every gateway from the stream and does not depend on them. A gateway that loses a lease
//! while paused may do one more round of its work before it notices: ticks are idempotent and
//! webhooks are at least once, so that overlap is harmless.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use futures_util::StreamExt;
use tokio::sync::watch;

use crate::cluster::nats::Cluster;

/// Where a gateway answers: what its heartbeat carries, so that another gateway can tell a
/// client which gateway holds what it asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addresses {
    /// The gateway's `cluster.node`.
    pub node: String,
    /// Its QUIC address.
    pub quic: String,
    /// Its web listener's base URL, if it has one.
    pub web: Option<String>,
}

/// The partitions this gateway owns now, and (when gateways fold only what they own) those
/// whose state it holds.
#[derive(Debug)]
pub struct Owned {
    bits: Vec<AtomicBool>,
    /// Each partition's owner as last read from the lease bucket.
    owners: Mutex<Vec<Option<Addresses>>>,
    /// Partitions folded here: `None` when the gateway folds everything (a single box, or
    /// `cluster.fold = "all"`); else set by the consumer once a leased partition is caught up,
    /// cleared when it is released.
    folded: Option<Vec<AtomicBool>>,
    /// Per-partition snapshots and takeovers, when folding only what it owns.
    pub takeover: crate::cluster::takeover::TakeoverStats,
}

impl Owned {
    /// None owned, of `partitions`; every partition folded.
    pub fn new(partitions: u32) -> Owned {
        Owned {
            bits: (0..partitions).map(|_| AtomicBool::new(false)).collect(),
            owners: Mutex::new(vec![None; partitions as usize]),
            folded: None,
            takeover: Default::default(),
        }
    }

    /// None owned and none folded, of `partitions`: a gateway that folds only what it owns.
    pub fn folding_owned(partitions: u32) -> Owned {
        Owned {
            bits: (0..partitions).map(|_| AtomicBool::new(false)).collect(),
            owners: Mutex::new(vec![None; partitions as usize]),
            folded: Some((0..partitions).map(|_| AtomicBool::new(false)).collect()),
            takeover: Default::default(),
        }
    }

    /// Everything owned: a single box owns the whole fleet.
    pub fn all(partitions: u32) -> Owned {
        Owned {
            bits: (0..partitions).map(|_| AtomicBool::new(true)).collect(),
            owners: Mutex::new(vec![None; partitions as usize]),
            folded: None,
            takeover: Default::default(),
        }
    }

    /// The number of partitions.
    pub fn partitions(&self) -> u32 {
        self.bits.len() as u32
    }

    /// True when this gateway folds only the partitions it owns.
    pub fn folds_owned_only(&self) -> bool {
        self.folded.is_some()
    }

    /// True when the state of partition `p` is held here (always, unless the gateway folds
    /// only what it owns).
    pub fn holds(&self, p: u32) -> bool {
        match &self.folded {
            None => true,
            Some(f) => f.get(p as usize).is_some_and(|b| b.load(Ordering::Acquire)),
        }
    }

    /// The partitions whose state is held here, ascending.
    pub fn held(&self) -> Vec<u32> {
        (0..self.partitions()).filter(|&p| self.holds(p)).collect()
    }

    /// The partitions leased here but not held yet (being taken over); none when the gateway
    /// folds everything.
    pub fn taking_over(&self) -> Vec<u32> {
        if !self.folds_owned_only() {
            return Vec::new();
        }
        (0..self.partitions())
            .filter(|&p| self.owns(p) && !self.holds(p))
            .collect()
    }

    /// The owner of partition `p` as last seen in the lease bucket (refreshed every
    /// `lease_ttl_s / 3`).
    pub fn owner_of(&self, p: u32) -> Option<Addresses> {
        crate::state::lock(&self.owners)
            .get(p as usize)
            .cloned()
            .flatten()
    }

    /// Marks partition `p` as held (caught up) or not (released).
    pub fn set_held(&self, p: u32, held: bool) {
        if let Some(b) = self.folded.as_ref().and_then(|f| f.get(p as usize)) {
            b.store(held, Ordering::Release);
        }
    }

    /// True when partition `p` is owned.
    pub fn owns(&self, p: u32) -> bool {
        self.bits
            .get(p as usize)
            .is_some_and(|b| b.load(Ordering::Relaxed))
    }

    /// True when partition 0 is owned: this gateway sends webhooks and archives routes.
    pub fn is_leader(&self) -> bool {
        self.owns(0)
    }

    /// The owned partitions, ascending.
    pub fn list(&self) -> Vec<u32> {
        (0..self.bits.len() as u32)
            .filter(|&p| self.owns(p))
            .collect()
    }

    pub(crate) fn set(&self, p: u32, owned: bool) {
        if let Some(b) = self.bits.get(p as usize) {
            b.store(owned, Ordering::Relaxed);
        }
    }
}

/// Keeps this gateway's leases until `stop`, then gives them back. Its heartbeat says where it
/// answers (`addresses`).
pub async fn run(
    cluster: Cluster,
    owned: Arc<Owned>,
    addresses: Addresses,
    mut stop: watch::Receiver<bool>,
) {
    let kv = cluster.leases_kv.clone();
    let partitions = cluster.cfg.partitions;
    let me = cluster.node.clone();
    let beat = serde_json::to_vec(&addresses).unwrap_or_default();
    let node_key = format!("node.{me}");
    let mut held: Vec<Option<u64>> = vec![None; partitions as usize];
    let period = Duration::from_millis(cluster.cfg.lease_ttl_s * 1000 / 3);
    let mut every = tokio::time::interval(period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => break,
        }
        if let Err(e) = kv.put(&node_key, beat.clone().into()).await {
            tracing::warn!(error = %e, "cluster heartbeat failed");
        }
        // Renew what is held; a failed compare-and-set means the lease is gone.
        for p in 0..partitions {
            if let Some(rev) = held[p as usize] {
                match kv.update(part_key(p), me.clone().into(), rev).await {
                    Ok(r) => held[p as usize] = Some(r),
                    Err(e) => {
                        tracing::warn!(partition = p, error = %e, "lease lost");
                        held[p as usize] = None;
                        owned.set(p, false);
                    }
                }
            }
        }
        let live = live_nodes(&kv).await.max(1);
        let share = partitions.div_ceil(live as u32) as usize;
        let mut count = held.iter().filter(|h| h.is_some()).count();
        // Give back the highest partitions above the fair share (partition 0 last).
        for p in (0..partitions).rev() {
            if count <= share {
                break;
            }
            if let Some(rev) = held[p as usize] {
                owned.set(p, false);
                held[p as usize] = None;
                count -= 1;
                let _ = kv.delete_expect_revision(part_key(p), Some(rev)).await;
                tracing::info!(partition = p, "lease given back (rebalancing)");
            }
        }
        // Take vacant partitions up to the share.
        for p in 0..partitions {
            if count >= share {
                break;
            }
            if held[p as usize].is_some() {
                continue;
            }
            if let Ok(rev) = kv.create(part_key(p), me.clone().into()).await {
                held[p as usize] = Some(rev);
                owned.set(p, true);
                count += 1;
                tracing::info!(partition = p, "lease taken");
            }
        }
        // Only a gateway that folds what it owns tells clients where a partition is.
        if owned.folds_owned_only() {
            refresh_owners(&kv, &owned).await;
        }
    }
    for p in 0..partitions {
        if let Some(rev) = held[p as usize] {
            owned.set(p, false);
            let _ = kv.delete_expect_revision(part_key(p), Some(rev)).await;
        }
    }
    let _ = kv.delete(&node_key).await;
}

/// Reads every partition's owner and its addresses into `owned`.
async fn refresh_owners(kv: &async_nats::jetstream::kv::Store, owned: &Owned) {
    let mut nodes: std::collections::HashMap<String, Option<Addresses>> = Default::default();
    let mut owners = Vec::with_capacity(owned.partitions() as usize);
    for p in 0..owned.partitions() {
        let node = match kv.get(part_key(p)).await {
            Ok(Some(v)) => String::from_utf8_lossy(&v).into_owned(),
            _ => {
                owners.push(None);
                continue;
            }
        };
        if !nodes.contains_key(&node) {
            let addr = match kv.get(format!("node.{node}")).await {
                Ok(Some(v)) => serde_json::from_slice::<Addresses>(&v).ok(),
                _ => None,
            };
            nodes.insert(node.clone(), addr);
        }
        owners.push(nodes.get(&node).cloned().flatten().or(Some(Addresses {
            node,
            quic: String::new(),
            web: None,
        })));
    }
    *crate::state::lock(&owned.owners) = owners;
}

fn part_key(p: u32) -> String {
    format!("part.{p}")
}

/// Gateways whose heartbeat has not expired.
async fn live_nodes(kv: &async_nats::jetstream::kv::Store) -> usize {
    let Ok(keys) = kv.keys().await else {
        return 1;
    };
    keys.filter(|k| std::future::ready(k.as_ref().is_ok_and(|k: &String| k.starts_with("node."))))
        .count()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_set() {
        let o = Owned::new(4);
        assert!(!o.is_leader());
        o.set(0, true);
        o.set(3, true);
        o.set(9, true); // out of range: ignored
        assert_eq!(o.list(), vec![0, 3]);
        assert!(o.is_leader());
        assert_eq!(Owned::all(3).list(), vec![0, 1, 2]);
    }
}
