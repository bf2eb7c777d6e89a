//! What the network relays of a run count, shared by every driver's relay (atomics): packets
//! each way and what became of them, rebindings, outages, and the phones' radio wake-ups and
//! running time. The report (`report`) turns them into [`crate::replay::netreport::NetReport`].

use std::sync::atomic::{AtomicU64, Ordering};

use super::net::Drop;

/// What every relay of a run counts.
#[derive(Debug, Default)]
pub struct NetCounters {
    /// Towards the gateway: packets the phone sent and what became of them.
    pub up: DirCounters,
    /// The same towards the phone.
    pub down: DirCounters,
    /// Downlink packets dropped because the NAT mapping had expired.
    pub no_mapping: AtomicU64,
    /// Spontaneous NAT rebindings done.
    pub rebinds: AtomicU64,
    /// NAT mappings that expired (idle) and were replaced by the phone's next packet.
    pub expiries: AtomicU64,
    /// Dead zones entered.
    pub dead_zones: AtomicU64,
    /// Suspensions entered.
    pub suspensions: AtomicU64,
    /// The phones' radio wake-ups (after their first activity).
    pub wakeups: AtomicU64,
    /// Time the phones ran, us (each driver from its start to its end).
    pub phone_us: AtomicU64,
}

/// One direction's packet counts.
#[derive(Debug, Default)]
pub struct DirCounters {
    /// Packets offered while the link was up (the radio sent or received them).
    pub packets: AtomicU64,
    /// Their bytes (UDP payload).
    pub bytes: AtomicU64,
    /// Of `packets`: lost at random.
    pub lost: AtomicU64,
    /// Of `packets`: dropped by a full bottleneck buffer.
    pub queue: AtomicU64,
    /// Packets swallowed while the link was down (not counted in `packets`), on the way in or
    /// in flight when it went down.
    pub down: AtomicU64,
    /// Packets that reached the other end, and their bytes.
    pub delivered: AtomicU64,
    /// Bytes of `delivered`.
    pub delivered_bytes: AtomicU64,
}

/// Adds `n` to a counter.
pub(super) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl DirCounters {
    /// Counts a packet of `size` bytes and what the model decided for it.
    pub(super) fn count(&self, size: usize, verdict: Result<u64, Drop>) {
        if verdict == Err(Drop::Down) {
            add(&self.down, 1);
            return;
        }
        add(&self.packets, 1);
        add(&self.bytes, size as u64);
        match verdict {
            Ok(_) | Err(Drop::Down) => {}
            Err(Drop::Loss) => add(&self.lost, 1),
            Err(Drop::Queue) => add(&self.queue, 1),
        }
    }
}
