//! Feed lag per subscriber class: how many events each live subscriber is behind the head of
//! the feed it follows. Every subscriber (a QUIC subscription, an SSE stream, a webhook
//! endpoint) registers its cursor here and moves it as it writes events; `/metrics` reads the
//! cursors against the store's heads when scraped. Keeping the cursor costs a subscriber one
//! relaxed atomic store per event, and the applier nothing.
//!
//! "Behind" means not yet handed to the subscriber's transport: events written into a QUIC
//! stream's send buffer (or an SSE channel) count as delivered. A consumer that stops reading
//! fills its stream and then its lag grows, one event at a time, while everyone else stays at
//! zero.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use milepost_proto::route::{DepotId, TrackingNumber};

use milepost_core::feed::FeedStore;

/// Kinds of subscribers, as the `class` label of the lag metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedClass {
    /// A parcel's feed over QUIC (a recipient, or a dispatcher following one parcel).
    Recipient,
    /// A dispatcher's depot feed over QUIC.
    DispatcherDepot,
    /// A dispatcher's bounding-box feed over QUIC.
    DispatcherArea,
    /// A web page's server-sent events stream (tracking page or dispatcher map).
    Sse,
    /// A webhook endpoint's outbox.
    Webhook,
}

impl FeedClass {
    /// Every class, in the order the metrics list them.
    pub const ALL: [FeedClass; 5] = [
        FeedClass::Recipient,
        FeedClass::DispatcherDepot,
        FeedClass::DispatcherArea,
        FeedClass::Sse,
        FeedClass::Webhook,
    ];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            FeedClass::Recipient => "recipient",
            FeedClass::DispatcherDepot => "dispatcher_depot",
            FeedClass::DispatcherArea => "dispatcher_area",
            FeedClass::Sse => "sse",
            FeedClass::Webhook => "webhook",
        }
    }
}

/// The feed a subscriber follows, whose head its cursor is measured against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LagTarget {
    /// A parcel's milestones.
    Parcel(TrackingNumber),
    /// A depot's route events.
    Depot(DepotId),
    /// Every parcel's milestones (webhooks).
    Milestones,
}

impl LagTarget {
    /// The offset of the newest event of this feed.
    fn head(&self, store: &FeedStore) -> u64 {
        match self {
            LagTarget::Parcel(t) => store.parcel_last(t),
            LagTarget::Depot(d) => store.depot_last(d),
            LagTarget::Milestones => store.milestones_last(),
        }
    }
}

struct Entry {
    class: FeedClass,
    target: LagTarget,
    cursor: AtomicU64,
}

/// Every live subscriber's cursor.
#[derive(Default)]
pub struct FeedLag {
    subs: DashMap<u64, Arc<Entry>>,
    next_id: AtomicU64,
}

/// One subscriber's registration: move its cursor with [`LagHandle::set`]; dropping it
/// unregisters the subscriber.
pub struct LagHandle {
    board: Arc<FeedLag>,
    id: u64,
    entry: Arc<Entry>,
}

impl LagHandle {
    /// The subscriber has now handed every event up to `offset` to its transport.
    pub fn set(&self, offset: u64) {
        self.entry.cursor.store(offset, Ordering::Relaxed);
    }
}

impl Drop for LagHandle {
    fn drop(&mut self) {
        self.board.subs.remove(&self.id);
    }
}

/// The lag of one class of subscribers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassLag {
    /// Subscribers of the class.
    pub subscribers: u64,
    /// Events behind, summed over them.
    pub sum: u64,
    /// Events behind, the worst of them.
    pub max: u64,
}

/// Entries measured per acquisition of the store's lock (the applier needs it too).
const MEASURE_CHUNK: usize = 512;

impl FeedLag {
    /// Registers a subscriber of `class` following `target`, at `cursor`.
    pub fn track(self: &Arc<Self>, class: FeedClass, target: LagTarget, cursor: u64) -> LagHandle {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(Entry {
            class,
            target,
            cursor: AtomicU64::new(cursor),
        });
        self.subs.insert(id, entry.clone());
        LagHandle {
            board: self.clone(),
            id,
            entry,
        }
    }

    /// The lag of every class (indexed like [`FeedClass::ALL`]). `store` gives access to the
    /// feed store; it is called once per chunk of subscribers so that the store's lock is never
    /// held for long.
    pub fn measure<F>(&self, mut with_store: F) -> [ClassLag; 5]
    where
        F: FnMut(&mut dyn FnMut(&FeedStore)),
    {
        let entries: Vec<Arc<Entry>> = self.subs.iter().map(|e| e.value().clone()).collect();
        let mut out = [ClassLag::default(); 5];
        for chunk in entries.chunks(MEASURE_CHUNK) {
            with_store(&mut |store: &FeedStore| {
                for e in chunk {
                    let behind = e
                        .target
                        .head(store)
                        .saturating_sub(e.cursor.load(Ordering::Relaxed));
                    let Some(i) = FeedClass::ALL.iter().position(|c| *c == e.class) else {
                        continue;
                    };
                    let c = &mut out[i];
                    c.subscribers += 1;
                    c.sum += behind;
                    c.max = c.max.max(behind);
                }
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use milepost_proto::route::{ParcelEvent, ParcelUpdate, Update};

    #[test]
    fn lag_is_head_minus_cursor_per_class() {
        let mut store = FeedStore::new(10, 10);
        let mut touched = Vec::new();
        for _ in 0..5 {
            let u = Update::Parcel(ParcelUpdate {
                tracking: "T".into(),
                fix_t_ms: 1,
                kind: ParcelEvent::ArrivingSoon,
            });
            store.record(&u, &mut touched);
        }
        let board = Arc::new(FeedLag::default());
        let a = board.track(FeedClass::Recipient, LagTarget::Parcel("T".into()), 0);
        let _b = board.track(FeedClass::Recipient, LagTarget::Parcel("T".into()), 4);
        let _w = board.track(FeedClass::Webhook, LagTarget::Milestones, 5);
        let m = board.measure(|f| f(&store));
        assert_eq!(
            m[0],
            ClassLag {
                subscribers: 2,
                sum: 6,
                max: 5
            }
        );
        assert_eq!(m[4].subscribers, 1);
        assert_eq!(m[4].sum, 0);
        a.set(5);
        assert_eq!(board.measure(|f| f(&store))[0].sum, 1);
        drop(a);
        assert_eq!(board.measure(|f| f(&store))[0].subscribers, 1);
    }
}
