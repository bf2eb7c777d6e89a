//! The numbers a carrier is judged by, folded from the log: what the fold observes while a
//! route runs ([`Tally`]: distance driven, stalls, late alerts, the ETAs each recipient was
//! shown, failure reasons, earlier attempts), what a route leaves behind ([`RouteFacts`], read
//! off its view and its tally, live or at close) and how facts add up per carrier, depot,
//! driver or day ([`Summary`], [`Figures`]).
//!
//! Pure like the rest of the core: the fold feeds the tally ([`crate::fold`]), each route keeps
//! its own, and the snapshot carries them in a section of their own, and the shell stores each closed route's facts beside its history
//! and serves the sums.
//!
//! Definitions (also in `docs/ANALYTICS.md`):
//! - a stop is **on time** when its arrival (detected, else its first outcome) falls inside its
//!   promised window; stops without a window are not counted either way;
//! - a parcel's **first attempt** is on the route where it gets its first outcome with no
//!   failed attempt before it (the core's book and its feed, 90 days);
//! - the **published ETA** of a parcel at horizon *h* is the ETA its recipient was shown when
//!   the parcel's stop was *h* stops ahead (the first shown in each bucket `1`, `2-3`, `4-6`,
//!   `7-10`, `11-20`); its error is that ETA less the stop's arrival (positive: the driver came
//!   earlier than shown).

use std::collections::BTreeMap;

use milepost_proto::route::{
    DispatchEvent, DispatchUpdate, FailureReason, ParcelEvent, ParcelUpdate, RouteId,
    TrackingNumber,
};
use milepost_proto::Fix;
use serde::{Deserialize, Serialize};

use crate::fleet::geo_util::M_PER_DEG;

mod facts;
mod summary;
#[cfg(test)]
mod tests;

pub use facts::{Counts, EtaAccuracy, RouteFacts};
pub use summary::{Figures, HorizonFigures, Summary};

/// The horizon buckets of published-ETA accuracy, in stops ahead (inclusive ranges).
pub const HORIZONS: [(u32, u32); 5] = [(1, 1), (2, 3), (4, 6), (7, 10), (11, 20)];

/// A horizon bucket's label, e.g. `2-3`.
pub fn horizon_label(b: usize) -> String {
    match HORIZONS.get(b) {
        Some((lo, hi)) if lo == hi => lo.to_string(),
        Some((lo, hi)) => format!("{lo}-{hi}"),
        None => String::new(),
    }
}

/// The bucket of `stops_ahead`, if it is in one.
pub fn horizon_of(stops_ahead: u32) -> Option<usize> {
    HORIZONS
        .iter()
        .position(|&(lo, hi)| stops_ahead >= lo && stops_ahead <= hi)
}

/// What the fold saw of one route while it ran.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteTally {
    /// Distance between consecutive fixes while the route was under way, metres.
    pub driven_m: f64,
    /// The last fix counted (lat, lon in degrees).
    last: Option<(f64, f64)>,
    /// Cosine of the first fix's latitude (the flat projection's scale for longitude).
    cos_lat: f64,
    /// `DriverStalled` alerts raised.
    pub stalls: u32,
    /// `RunningLate` alerts raised.
    pub late_alerts: u32,
    /// Its parcels.
    pub parcels: BTreeMap<TrackingNumber, ParcelTally>,
}

/// What the fold saw of one parcel on its current route.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ParcelTally {
    /// Failed attempts before this route (the core's book and the parcel's feed).
    pub earlier_failures: u32,
    /// "N stops away" as last shown (not-served stops before its stop).
    away: Option<u32>,
    /// The ETA as last shown, UTC ms.
    eta_ms: Option<i64>,
    /// The ETA shown when the stop first came within each horizon bucket, UTC ms.
    pub shown: [Option<i64>; HORIZONS.len()],
    /// The reason of its failed attempt on this route.
    pub failure: Option<FailureReason>,
    /// When its outcome came, UTC ms.
    pub outcome_ms: Option<i64>,
}

impl ParcelTally {
    fn show(&mut self) {
        let (Some(n), Some(eta)) = (self.away, self.eta_ms) else {
            return;
        };
        if let Some(b) = horizon_of(n.saturating_add(1)) {
            self.shown[b].get_or_insert(eta);
        }
    }
}

impl RouteTally {
    /// One fix of the route under way (not before its start, not after its finish): the step
    /// from the previous one, on a local flat projection (fixes are metres apart).
    pub fn on_fix(&mut self, fix: &Fix) {
        let (lat, lon) = (fix.lat_e7 as f64 * 1e-7, fix.lon_e7 as f64 * 1e-7);
        if let Some((la, lo)) = self.last {
            let dy = (lat - la) * M_PER_DEG;
            let dx = (lon - lo) * M_PER_DEG * self.cos_lat;
            self.driven_m += (dx * dx + dy * dy).sqrt();
        } else {
            self.cos_lat = lat.to_radians().cos();
        }
        self.last = Some((lat, lon));
    }

    /// One update of one of the route's parcels. `earlier_failures` counts the parcel's failed
    /// attempts so far; it is asked once, when the parcel is first seen on this route.
    pub fn observe_parcel(
        &mut self,
        p: &ParcelUpdate,
        earlier_failures: impl FnOnce(&TrackingNumber) -> u32,
    ) {
        let e = match self.parcels.get_mut(&p.tracking) {
            Some(e) => e,
            None => self
                .parcels
                .entry(p.tracking.clone())
                .or_insert(ParcelTally {
                    earlier_failures: earlier_failures(&p.tracking),
                    ..ParcelTally::default()
                }),
        };
        match &p.kind {
            ParcelEvent::StopsAway { n } => {
                e.away = Some(*n);
                e.show();
            }
            ParcelEvent::EtaChanged { eta_ms, .. } => {
                e.eta_ms = Some(*eta_ms);
                e.show();
            }
            ParcelEvent::Delivered { at_ms, .. } | ParcelEvent::DeliveredTo { at_ms, .. } => {
                e.outcome_ms.get_or_insert(*at_ms);
            }
            ParcelEvent::Failed { reason, .. } => {
                e.failure = Some(*reason);
                e.outcome_ms.get_or_insert(p.fix_t_ms);
            }
            _ => {}
        }
    }

    /// One of the route's dispatcher events.
    pub fn observe_dispatch(&mut self, d: &DispatchUpdate) {
        match d.kind {
            DispatchEvent::DriverStalled { .. } => self.stalls += 1,
            DispatchEvent::RunningLate { .. } => self.late_alerts += 1,
            _ => {}
        }
    }
}

/// The live routes' tallies, as the snapshot carries them (each route keeps its own while it
/// runs: [`crate::fleet::run::RouteRun::tally`]).
pub type Tally = Vec<(RouteId, RouteTally)>;
