//! Serving one feed subscription on its own QUIC stream.
//!
//! The subscriber's writer reads the feed store from its cursor and writes events in order;
//! when it has caught up it sends coalesced positions and sleeps in its mailbox until the
//! applier wakes it. It never holds up anyone: a slow client only fills its own stream, and
//! when it drains, the writer carries on from its cursor (or tells it to resync when a depot
//! ring no longer holds its cursor). Positions are always the newest, read from the live store.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use milepost_proto::route::{DepotId, ParcelStatus, TrackingNumber, Update};
use milepost_proto::{
    DriverId, DriverPosition, ErrorCode, ErrorFrame, FeedSnapshot, FeedTarget, Seq, ServerMsg,
    Subscribe,
};

use crate::auth::{Claims, Role};
use crate::feed::{FeedClass, LagHandle, LagTarget, Mailbox};
use crate::server::shared::Shared;
use crate::state::lock;
use crate::wire::{write_msg, WireError};
use milepost_core::feed::{FeedKey, PositionPace, TooOld};

/// Events written per store read.
const READ_BATCH: usize = 256;

/// A box in degrees: (min_lat, min_lon, max_lat, max_lon).
type Area = (f64, f64, f64, f64);

/// What a subscription follows, once authorized.
enum Target {
    Parcel(TrackingNumber),
    Depot(DepotId, Option<Area>),
}

/// Serves a subscription until the client goes away.
pub async fn serve(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    claims: &Claims,
    shared: &Shared,
    sub: Subscribe,
    version: u16,
) {
    // Folding only the partitions it owns, a gateway serves the feeds of the depots it holds
    // (the message names the gateway that holds this one).
    let target = match shared.serves(&claims.depot) {
        Ok(()) => authorize(claims, shared, &sub.target).map_err(|c| (c, c.to_string())),
        Err(elsewhere) => Err((ErrorCode::ServerBusy, elsewhere.to_string())),
    };
    let target = match target {
        Ok(t) => t,
        Err((code, message)) => {
            let _ = write_msg(&mut send, &ServerMsg::Error(ErrorFrame { code, message })).await;
            let _ = send.finish();
            return;
        }
    };
    let (class, lag_target) = match &target {
        Target::Parcel(t) => (FeedClass::Recipient, LagTarget::Parcel(t.clone())),
        Target::Depot(d, None) => (FeedClass::DispatcherDepot, LagTarget::Depot(d.clone())),
        Target::Depot(d, Some(_)) => (FeedClass::DispatcherArea, LagTarget::Depot(d.clone())),
    };
    let mailbox = Arc::new(Mailbox::default());
    match &target {
        Target::Parcel(t) => shared.hub.register(FeedKey::Parcel(t.clone()), &mailbox),
        Target::Depot(d, _) => {
            shared.hub.register(FeedKey::Depot(d.clone()), &mailbox);
            shared
                .hub
                .register(FeedKey::DepotPositions(d.clone()), &mailbox);
        }
    }
    shared
        .stats
        .subscriptions
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut feed = Feed {
        depot: claims.depot.clone(),
        lag: shared.lag.track(class, lag_target, sub.after.unwrap_or(0)),
        target,
        mailbox,
        sent: HashMap::new(),
        driver: None,
        pace: PositionPace::default(),
        last_flush: Instant::now(),
        version,
    };
    let client_gone = async {
        // The client sends nothing after Subscribe; the stream ending means it left.
        let mut buf = [0u8; 64];
        while let Ok(Some(_)) = recv.read(&mut buf).await {}
    };
    tokio::select! {
        _ = feed.run(&mut send, shared, sub.after) => {}
        _ = client_gone => {}
    }
    shared
        .stats
        .subscriptions
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
}

/// Checks the token may follow the target.
fn authorize(claims: &Claims, shared: &Shared, target: &FeedTarget) -> Result<Target, ErrorCode> {
    let depot = DepotId(claims.depot.clone());
    match (target, claims.role) {
        (FeedTarget::Parcel(t), Role::Recipient) if t.0 == claims.sub => {
            Ok(Target::Parcel(t.clone()))
        }
        (FeedTarget::Parcel(t), Role::Dispatcher) => {
            let status = lock(&shared.state.core)
                .parcel_status(t)
                .ok_or(ErrorCode::NotFound)?;
            let in_depot = lock(&shared.state.feed).depot_of(&status.route_id) == Some(&depot);
            if in_depot {
                Ok(Target::Parcel(t.clone()))
            } else {
                Err(ErrorCode::OutOfScope)
            }
        }
        (FeedTarget::Parcel(_), Role::Recipient) => Err(ErrorCode::OutOfScope),
        (FeedTarget::Depot, Role::Dispatcher) => Ok(Target::Depot(depot, None)),
        (
            FeedTarget::Area {
                min_lat_e7,
                min_lon_e7,
                max_lat_e7,
                max_lon_e7,
            },
            Role::Dispatcher,
        ) => {
            let lat_ok = |v: &i32| (-900_000_000..=900_000_000).contains(v);
            let lon_ok = |v: &i32| (-1_800_000_000..=1_800_000_000).contains(v);
            if min_lat_e7 > max_lat_e7
                || min_lon_e7 > max_lon_e7
                || ![min_lat_e7, max_lat_e7].into_iter().all(lat_ok)
                || ![min_lon_e7, max_lon_e7].into_iter().all(lon_ok)
            {
                return Err(ErrorCode::BadQuery);
            }
            let d = |v: &i32| *v as f64 * 1e-7;
            Ok(Target::Depot(
                depot,
                Some((d(min_lat_e7), d(min_lon_e7), d(max_lat_e7), d(max_lon_e7))),
            ))
        }
        _ => Err(ErrorCode::WrongRole),
    }
}

/// One subscription's state.
struct Feed {
    /// The depot of the subscriber's token (the feed's partition, when the gateway folds only
    /// what it owns).
    depot: String,
    target: Target,
    mailbox: Arc<Mailbox>,
    /// Seq of the last position sent, per driver (to send only changes).
    sent: HashMap<DriverId, Seq>,
    /// For a parcel feed: the driver whose position key we are registered under.
    driver: Option<DriverId>,
    /// For a parcel feed: at most one position per `feed.recipient_position_ms`.
    pace: PositionPace,
    last_flush: Instant,
    /// The cursor as the lag metrics see it.
    lag: LagHandle,
    /// The session's protocol version (a version-1 feed carries only version-1 events).
    version: u16,
}

impl Feed {
    async fn run(
        &mut self,
        send: &mut quinn::SendStream,
        shared: &Shared,
        after: Option<u64>,
    ) -> Result<(), WireError> {
        let mut cursor = match after {
            Some(a) if a <= self.last_offset(shared) => a,
            _ => self.snapshot(send, shared).await?,
        };
        self.lag.set(cursor);
        loop {
            // Its partition passed to another gateway (checked before reading what the release
            // emptied): the subscriber is told which, and resumes there from its cursor.
            if let Err(elsewhere) = shared.serves(&self.depot) {
                let message = elsewhere.to_string();
                let code = ErrorCode::ServerBusy;
                write_msg(send, &ServerMsg::Error(ErrorFrame { code, message })).await?;
                let _ = send.finish();
                return Ok(());
            }
            let events = self.read(shared, cursor);
            match events {
                Ok(events) => {
                    let full = events.len() == READ_BATCH;
                    for (offset, update) in events {
                        // Version 1 has no event outside its closed enums (PROTOCOL.md): the
                        // others are passed over on a version-1 feed, the cursor moving on.
                        let spoken = match &update {
                            Update::Parcel(p) => self.version > 1 || p.kind.in_version_1(),
                            _ => true,
                        };
                        if spoken {
                            write_msg(send, &ServerMsg::FeedEvent { offset, update }).await?;
                        }
                        cursor = offset;
                        self.lag.set(cursor);
                    }
                    if full {
                        continue;
                    }
                }
                Err(TooOld(_)) => {
                    write_msg(send, &ServerMsg::FeedResync).await?;
                    cursor = self.snapshot(send, shared).await?;
                    self.lag.set(cursor);
                    continue;
                }
            }
            self.positions(send, shared).await?;
            // Sleep until something we follow changes; wake now and then anyway, because the
            // privacy rule also depends on time (an ETA coming closer).
            let _ =
                tokio::time::timeout(Duration::from_secs(1), self.mailbox.notify.notified()).await;
        }
    }

    fn last_offset(&self, shared: &Shared) -> u64 {
        let feed = lock(&shared.state.feed);
        match &self.target {
            Target::Parcel(t) => feed.parcel_last(t),
            Target::Depot(d, _) => feed.depot_last(d),
        }
    }

    fn read(&self, shared: &Shared, cursor: u64) -> Result<Vec<(u64, Update)>, TooOld> {
        let feed = lock(&shared.state.feed);
        match &self.target {
            Target::Parcel(t) => Ok(feed.parcel_after(t, cursor, READ_BATCH)),
            Target::Depot(d, _) => feed.depot_after(d, cursor, READ_BATCH),
        }
    }

    /// Sends the current state; returns the offset it covers.
    async fn snapshot(
        &mut self,
        send: &mut quinn::SendStream,
        shared: &Shared,
    ) -> Result<u64, WireError> {
        self.sent.clear();
        // Take the offset first: an event racing with the snapshot is then sent (again) as an
        // event rather than lost.
        let offset = self.last_offset(shared);
        let (parcel, positions) = match &self.target {
            Target::Parcel(t) => {
                let status = lock(&shared.state.core).parcel_status(t);
                let pos = status.as_ref().and_then(|s| self.visible_driver(shared, s));
                (status, pos.into_iter().collect())
            }
            Target::Depot(d, area) => {
                let all = lock(&shared.state.positions).of_depot(&d.0);
                (
                    None,
                    all.into_iter()
                        .filter(|p| in_area(area, p))
                        .collect::<Vec<_>>(),
                )
            }
        };
        for p in &positions {
            self.sent.insert(p.driver.clone(), p.seq);
        }
        // A parcel's snapshot is its first position: the pace counts from it.
        if let (Target::Parcel(_), Some(p)) = (&self.target, positions.first()) {
            self.pace.sent(p.fix.t_ms, shared.now_ms());
        }
        lock(&self.mailbox.moved).clear();
        write_msg(
            send,
            &ServerMsg::FeedSnapshot(FeedSnapshot {
                offset,
                parcel,
                positions,
            }),
        )
        .await?;
        Ok(offset)
    }

    /// The parcel's driver's position, if the privacy rule lets the recipient see it now.
    fn visible_driver(&mut self, shared: &Shared, status: &ParcelStatus) -> Option<DriverPosition> {
        let driver = visible_driver(shared, status)?;
        if self.driver.as_ref() != Some(&driver) {
            shared
                .hub
                .register(FeedKey::Driver(driver.clone()), &self.mailbox);
            self.driver = Some(driver.clone());
        }
        lock(&shared.state.positions)
            .position_of(&driver)
            .map(|(_, p)| p)
    }

    /// Sends the positions that changed (coalesced to the newest).
    async fn positions(
        &mut self,
        send: &mut quinn::SendStream,
        shared: &Shared,
    ) -> Result<(), WireError> {
        let fresh: Vec<DriverPosition> = match &self.target {
            Target::Parcel(t) => {
                let status = lock(&shared.state.core).parcel_status(t);
                let (now, every) = (shared.now_ms(), shared.cfg.feed.recipient_position_ms);
                let p = status.and_then(|s| self.visible_driver(shared, &s));
                // Not yet due: left unsent (`sent` keeps the older seq), so the newest goes
                // out at a later look (the loop looks at least once a second).
                match p {
                    Some(p)
                        if self.sent.get(&p.driver) != Some(&p.seq)
                            && self.pace.due(p.fix.t_ms, now, every) =>
                    {
                        self.pace.sent(p.fix.t_ms, now);
                        vec![p]
                    }
                    _ => Vec::new(),
                }
            }
            Target::Depot(_, area) => {
                // Dispatcher maps want a few updates a second, not one per fix.
                let flush = Duration::from_millis(shared.cfg.feed.position_flush_ms);
                let since = self.last_flush.elapsed();
                if since < flush {
                    tokio::time::sleep(flush - since).await;
                }
                self.last_flush = Instant::now();
                let moved: Vec<DriverId> = lock(&self.mailbox.moved).drain().collect();
                let pos = lock(&shared.state.positions);
                moved
                    .iter()
                    .filter_map(|d| pos.position_of(d).map(|(_, p)| p))
                    .filter(|p| in_area(area, p))
                    .collect()
            }
        };
        for p in fresh {
            if self.sent.get(&p.driver) != Some(&p.seq) {
                self.sent.insert(p.driver.clone(), p.seq);
                write_msg(send, &ServerMsg::FeedPosition(p)).await?;
            }
        }
        Ok(())
    }
}

/// The privacy rule ([`milepost_core::present::visible_driver`]) over the shared state:
/// the driver whose position the recipient of a parcel in `status` may see now, if any.
/// Shared by the QUIC feed and the web pages, so both show exactly the same thing.
pub fn visible_driver(shared: &Shared, status: &ParcelStatus) -> Option<DriverId> {
    let core = lock(&shared.state.core);
    milepost_core::present::visible_driver(&core, &shared.cfg.feed, status, shared.now_ms())
}

fn in_area(area: &Option<Area>, p: &DriverPosition) -> bool {
    area.is_none_or(|(a, b, c, d)| {
        let (lat, lon) = (p.fix.lat(), p.fix.lon());
        lat >= a && lat <= c && lon >= b && lon <= d
    })
}
