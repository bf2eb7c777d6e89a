//! Fixes on their way to an ack: admission of a batch or a live-fix datagram for the peer's
//! driver, and `settle`, which waits for an admitted batch to be durable and folded and turns
//! it into the ack (counting accepted, rejected and duplicate fixes).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use milepost_proto::{Ack, ClientDatagram, ErrorCode, Fix, Seq};
use tokio::sync::mpsc;

use crate::auth::Role;
use crate::server::ingest::{admit, Admitted};
use crate::server::session::peer::{close, Peer};
use crate::server::shared::Shared;
use crate::store::log::LogError;
use crate::store::writer::queue::LogPermit;

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

/// Waits for an admitted batch to be durable and folded into the fleet state (so a query after
/// the ack sees it), and returns its ack, whose watermark comes from the durable ledger: a
/// phone never learns a seq is settled before it is on disk. A refused batch's seqs were
/// already unsettled by the log writer (see `RefusedHook`).
pub(super) async fn settle(a: Admitted, peer: &Peer, shared: &Shared) -> Result<Ack, ErrorCode> {
    let mut a = a;
    // On a single box the applier answers `done` once the record is applied, so the wait for
    // `applied` below returns at once; in a cluster `done` means "in the stream" and the
    // applier follows the stream, so it may have to wait.
    match a.done.wait().await {
        // A barrier returns the next record number: wait for everything before it.
        Ok(0) if a.barrier => {}
        Ok(next) if a.barrier => shared.applied.applied(next - 1).await,
        Ok(lsn) => shared.applied.applied(lsn).await,
        Err(LogError::DiskFull) => return Err(ErrorCode::DiskFull),
        Err(_) => return Err(ErrorCode::StorageFailure),
    }
    a.ack.watermark = shared.state.ledger.watermark(&peer.driver);
    shared.stats.ack_latency.observe(a.admitted_at.elapsed());
    let s = &shared.stats;
    s.fixes_accepted
        .fetch_add(a.accepted as u64, Ordering::Relaxed);
    s.fixes_rejected
        .fetch_add(a.ack.rejected.len() as u64, Ordering::Relaxed);
    for r in &a.ack.rejected {
        s.rejected_by_reason[r.reason as usize].fetch_add(1, Ordering::Relaxed);
    }
    s.fixes_duplicate
        .fetch_add(a.ack.duplicates as u64, Ordering::Relaxed);
    Ok(a.ack)
}

/// A live-fix datagram: admitted now, acked on the ack stream once durable.
pub(super) fn on_datagram(
    bytes: &[u8],
    peer: &Arc<Peer>,
    shared: &Arc<Shared>,
    live: &mpsc::Sender<Box<Admitted>>,
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
    let _ = live.try_send(Box::new(admitted));
}
