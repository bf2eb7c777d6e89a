//! Fixes on their way to an ack: admission of a batch or a live-fix datagram for the peer's
//! driver, and `settle`, which waits for an admitted batch to be durable and folded and turns
//! it into the ack (counting accepted, rejected and duplicate fixes).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use milepost_proto::{Ack, ClientDatagram, ErrorCode, Fix, Seq};
use tokio::sync::mpsc;

use crate::auth::Role;
use crate::server::ingest::{admit, Admitted};
use crate::server::session::peer::{close, Peer};
use crate::server::shared::{Shared, Stats};
use crate::store::log::LogError;
use crate::store::writer::queue::{Completion, LogPermit};

/// Admits `fixes` (seqs from `first_seq`) of the peer's driver at the server's time now,
/// handing their record to the log through `permit`.
pub(super) fn admit_from(
    peer: &Peer,
    shared: &Shared,
    first_seq: Seq,
    fixes: &[Fix],
    permit: LogPermit,
) -> Result<Admitted, ErrorCode> {
    let now = shared.now_ms();
    admit(
        &shared.cfg,
        &shared.ledger,
        &peer.driver,
        &peer.claims.depot,
        first_seq,
        fixes,
        now,
        permit,
    )
}

/// An admitted batch on its way to its ack. Its fixes are counted (accepted, rejected,
/// duplicate) once the log has them, whether or not the ack reaches the phone: if the session
/// ends first (the phone went offline, or an ack queue was full), dropping it hands the wait to
/// a task of its own. The phone may learn from a later watermark that those fixes are stored,
/// and the gateway's counters must say the same.
pub(super) struct Settling {
    /// The writer's answer, until it came (then counted).
    done: Option<Completion>,
    barrier: bool,
    ack: Ack,
    accepted: usize,
    admitted_at: Instant,
    shared: Arc<Shared>,
}

impl Settling {
    /// Follows `a` until it is counted.
    pub(super) fn new(a: Admitted, shared: &Arc<Shared>) -> Box<Settling> {
        Box::new(Settling {
            done: Some(a.done),
            barrier: a.barrier,
            ack: a.ack,
            accepted: a.accepted,
            admitted_at: a.admitted_at,
            shared: shared.clone(),
        })
    }
}

/// Adds an answered batch's fixes to the counters.
fn count(stats: &Stats, ack: &Ack, accepted: usize) {
    stats
        .fixes_accepted
        .fetch_add(accepted as u64, Ordering::Relaxed);
    stats
        .fixes_rejected
        .fetch_add(ack.rejected.len() as u64, Ordering::Relaxed);
    for r in &ack.rejected {
        stats.rejected_by_reason[r.reason as usize].fetch_add(1, Ordering::Relaxed);
    }
    stats
        .fixes_duplicate
        .fetch_add(ack.duplicates as u64, Ordering::Relaxed);
}

impl Drop for Settling {
    fn drop(&mut self) {
        let Some(done) = self.done.take() else {
            return;
        };
        // Outside a runtime (the gateway is gone) there is nobody left to count for.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (shared, ack, accepted) = (self.shared.clone(), self.ack.clone(), self.accepted);
        rt.spawn(async move {
            if done.wait().await.is_ok() {
                count(&shared.stats, &ack, accepted);
            }
        });
    }
}

/// Waits for an admitted batch to be durable and folded into the fleet state (so a query after
/// the ack sees it), and returns its ack, whose watermark comes from the durable ledger: a
/// phone never learns a seq is settled before it is on disk. A refused batch's seqs were
/// already unsettled by the log writer (see `RefusedHook`).
pub(super) async fn settle(mut s: Box<Settling>, peer: &Peer) -> Result<Ack, ErrorCode> {
    let answer = match s.done.as_mut() {
        Some(done) => done.wait_mut().await,
        None => Err(LogError::Closed),
    };
    // Answered: from here on nothing is left for `Drop` to wait for.
    s.done = None;
    // On a single box the applier answers `done` once the record is applied, so the wait for
    // `applied` below returns at once; in a cluster `done` means "in the stream" and the
    // applier follows the stream, so it may have to wait.
    let shared = s.shared.clone();
    match answer {
        Ok(n) => {
            count(&shared.stats, &s.ack, s.accepted);
            match n {
                // A barrier returns the next record number: wait for everything before it.
                0 if s.barrier => {}
                next if s.barrier => shared.applied.applied(next - 1).await,
                lsn => shared.applied.applied(lsn).await,
            }
        }
        Err(LogError::DiskFull) => return Err(ErrorCode::DiskFull),
        Err(_) => return Err(ErrorCode::StorageFailure),
    }
    let mut ack = s.ack.clone();
    ack.watermark = shared.state.ledger.watermark(&peer.driver);
    shared.stats.ack_latency.observe(s.admitted_at.elapsed());
    Ok(ack)
}

/// A live-fix datagram: admitted now, acked on the ack stream once durable.
pub(super) fn on_datagram(
    bytes: &[u8],
    peer: &Arc<Peer>,
    shared: &Arc<Shared>,
    live: &mpsc::Sender<Box<Settling>>,
) {
    let Ok(ClientDatagram::LiveFix { seq, fix }) = milepost_proto::decode::<ClientDatagram>(bytes)
    else {
        shared.stats.refusals.fetch_add(1, Ordering::Relaxed);
        close(&peer.conn, ErrorCode::ProtocolViolation);
        return;
    };
    if peer.claims.role != Role::Driver {
        return;
    }
    // A datagram never waits: with the writer's queue full it is dropped, before anything is
    // settled, as the network could have dropped it (the phone resends it in a batch).
    let Some(permit) = shared.log.try_reserve() else {
        return;
    };
    let Ok(admitted) = admit_from(peer, shared, seq, &[fix], permit) else {
        // Out of window: the phone will resend it in a batch and get the error there.
        return;
    };
    // The record is with the writer whatever happens next; a full ack queue only loses the
    // ack (the phone's resend is then acked as a duplicate, truthfully).
    let _ = live.try_send(Settling::new(admitted, shared));
}
