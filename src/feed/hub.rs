//! Who waits for what. Subscriptions register a [`Mailbox`] under the keys they follow; after
//! each applied group the applier hands the hub the keys the group touched, and the hub wakes
//! exactly those mailboxes (never all subscribers: with 20,000 of them that would be a
//! thundering herd per fsync).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};

use milepost_core::feed::FeedKey;
use milepost_proto::DriverId;
use tokio::sync::Notify;

/// One subscription's wake-up box.
#[derive(Default)]
pub struct Mailbox {
    /// Woken when something it follows changed (a permit is stored if nobody waits).
    pub notify: Notify,
    /// Drivers that moved since the subscriber last looked (coalesced: a set).
    pub moved: Mutex<HashSet<DriverId>>,
}

/// The registry of mailboxes by key.
#[derive(Default)]
pub struct FeedHub {
    boxes: milepost_core::hash::FastDashMap<FeedKey, Vec<Weak<Mailbox>>>,
}

impl FeedHub {
    /// Registers a mailbox under `key`; it is dropped from the hub once the subscription drops
    /// its `Arc`.
    pub fn register(&self, key: FeedKey, mailbox: &Arc<Mailbox>) {
        let mut v = self.boxes.entry(key).or_default();
        v.retain(|w| w.strong_count() > 0);
        v.push(Arc::downgrade(mailbox));
    }

    /// Forgets the keys whose subscriptions are all gone (the applier calls it now and then,
    /// so that every parcel ever followed does not keep an entry).
    pub fn sweep(&self) {
        self.boxes.retain(|_, v| {
            v.retain(|w| w.strong_count() > 0);
            !v.is_empty()
        });
    }

    /// Wakes the mailboxes of `key`. For position keys, `moved` names the driver.
    pub fn wake(&self, key: &FeedKey, moved: Option<&DriverId>) {
        let Some(v) = self.boxes.get(key) else { return };
        for w in v.iter() {
            if let Some(m) = w.upgrade() {
                if let Some(d) = moved {
                    crate::state::lock(&m.moved).insert(d.clone());
                }
                m.notify.notify_one();
            }
        }
    }

    /// Number of keys with mailboxes (for metrics).
    pub fn keys(&self) -> usize {
        self.boxes.len()
    }
}
