//! [`RouteFacts`]: one route's numbers, read off its view and its tally (a live route's so far,
//! a closed route's for good: the shell stores them beside the route's history).

use std::collections::BTreeMap;

use milepost_proto::route::{DepotId, ParcelState, RouteId, TrackingNumber};
use milepost_proto::DriverId;
use serde::{Deserialize, Serialize};

use super::{RouteTally, HORIZONS};
use crate::fleet::ndr::reason_name;
use crate::fleet::view::RouteView;

/// Published-ETA errors of one horizon bucket: sums, so that facts add up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EtaAccuracy {
    /// ETAs scored.
    pub n: u32,
    /// Sum of |shown - arrival|, seconds.
    pub abs_s: f64,
    /// Sum of (shown - arrival), seconds.
    pub signed_s: f64,
}

/// One route's numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RouteFacts {
    /// The route.
    pub route_id: RouteId,
    /// Its depot.
    pub depot: DepotId,
    /// Its driver.
    pub driver: DriverId,
    /// Its planned start, UTC ms (its day).
    pub planned_start_ms: i64,
    /// When it started, UTC ms.
    pub started_ms: Option<i64>,
    /// When its last parcel got an outcome, UTC ms.
    pub finished_ms: Option<i64>,
    /// Its numbers (flattened: a route's facts read as one object).
    #[serde(flatten)]
    pub counts: Counts,
}

/// The additive numbers of one route, or of many added up ([`Counts::add`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Stops with a parcel to deliver.
    pub stops: u32,
    /// Stops reached (arrival detected) or with an outcome.
    pub stops_served: u32,
    /// Served stops that had a promised window.
    pub with_window: u32,
    /// Of those, reached inside the window.
    pub on_time: u32,
    /// Of those, reached before it.
    pub early: u32,
    /// Of those, reached after it.
    pub late: u32,
    /// Parcels on the route (not taken off it by their recipient).
    pub parcels: u32,
    /// Delivered.
    pub delivered: u32,
    /// Failed attempts.
    pub failed: u32,
    /// Parcels whose first attempt was on this route.
    pub first_attempts: u32,
    /// Of those, delivered.
    pub first_attempt_delivered: u32,
    /// Failed attempts by reason code (`recipient_absent`, ...).
    pub failed_by_reason: BTreeMap<String, u32>,
    /// Time at each stop with an arrival: to its departure, or to its last outcome when the
    /// driver reported before leaving, seconds.
    pub stop_times_s: Vec<u32>,
    /// Time under way (start to finish, or to the newest fix), seconds.
    pub working_s: u64,
    /// Distance driven while under way, metres.
    pub driven_m: f64,
    /// Stall alerts.
    pub stalls: u32,
    /// Running-late alerts.
    pub late_alerts: u32,
    /// Published-ETA accuracy per horizon bucket ([`HORIZONS`]).
    pub eta: [EtaAccuracy; HORIZONS.len()],
}

impl Counts {
    /// Adds `o`'s numbers to these.
    pub fn add(&mut self, o: &Counts) {
        self.stops += o.stops;
        self.stops_served += o.stops_served;
        self.with_window += o.with_window;
        self.on_time += o.on_time;
        self.early += o.early;
        self.late += o.late;
        self.parcels += o.parcels;
        self.delivered += o.delivered;
        self.failed += o.failed;
        self.first_attempts += o.first_attempts;
        self.first_attempt_delivered += o.first_attempt_delivered;
        for (r, n) in &o.failed_by_reason {
            *self.failed_by_reason.entry(r.clone()).or_default() += n;
        }
        self.stop_times_s.extend_from_slice(&o.stop_times_s);
        self.working_s += o.working_s;
        self.driven_m += o.driven_m;
        self.stalls += o.stalls;
        self.late_alerts += o.late_alerts;
        for (a, b) in self.eta.iter_mut().zip(o.eta.iter()) {
            a.n += b.n;
            a.abs_s += b.abs_s;
            a.signed_s += b.signed_s;
        }
    }
}

impl RouteFacts {
    /// The facts of a route from its view, planned start and tally; parcels `withdrawn` from
    /// it by their recipients are left out.
    pub fn of(
        view: &RouteView,
        planned_start_ms: i64,
        tally: Option<&RouteTally>,
        withdrawn: impl Fn(&TrackingNumber) -> bool,
    ) -> RouteFacts {
        let empty = RouteTally::default();
        let tally = tally.unwrap_or(&empty);
        let mut f = RouteFacts {
            route_id: view.route_id.clone(),
            depot: view.depot.clone(),
            driver: view.driver.clone(),
            planned_start_ms,
            started_ms: view.started_ms,
            finished_ms: view.finished_ms,
            counts: Counts {
                driven_m: tally.driven_m,
                stalls: tally.stalls,
                late_alerts: tally.late_alerts,
                ..Counts::default()
            },
        };
        let c = &mut f.counts;
        if let (Some(s), Some(e)) = (view.started_ms, view.finished_ms.or(view.last_fix_t_ms)) {
            c.working_s = ((e - s).max(0) / 1000) as u64;
        }
        for stop in &view.stops {
            let parcels: Vec<_> = stop
                .parcels
                .iter()
                .filter(|(t, _)| !withdrawn(t))
                .map(|(t, state)| (*state, tally.parcels.get(t)))
                .collect();
            if parcels.is_empty() {
                continue;
            }
            // The stop was reached when the driver's arrival was detected, else at its first
            // outcome (a delivery reported without a detected arrival).
            let first_outcome = parcels
                .iter()
                .filter(|(state, _)| matches!(state, ParcelState::Delivered | ParcelState::Failed))
                .filter_map(|(_, p)| p.and_then(|p| p.outcome_ms))
                .min();
            let reached = stop.arrived_ms.or(first_outcome);
            for (state, p) in &parcels {
                c.parcels += 1;
                let first = p.is_none_or(|p| p.earlier_failures == 0);
                match state {
                    ParcelState::Delivered => {
                        c.delivered += 1;
                        c.first_attempts += u32::from(first);
                        c.first_attempt_delivered += u32::from(first);
                    }
                    // A return to the sender is not an attempt at the door.
                    ParcelState::Failed => {
                        c.failed += 1;
                        c.first_attempts += u32::from(first);
                        let reason = p.and_then(|p| p.failure).map_or("other", reason_name);
                        *c.failed_by_reason.entry(reason.to_owned()).or_default() += 1;
                    }
                    _ => {}
                }
                // Every ETA shown for it, against the stop's arrival.
                if let (Some(p), Some(at)) = (p, reached) {
                    for (b, shown) in p.shown.iter().enumerate() {
                        if let Some(eta) = shown {
                            let err = (eta - at) as f64 / 1000.0;
                            let a = &mut c.eta[b];
                            a.n += 1;
                            a.abs_s += err.abs();
                            a.signed_s += err;
                        }
                    }
                }
            }
            c.stops += 1;
            let Some(at) = reached else { continue };
            c.stops_served += 1;
            if let Some(w) = &stop.window {
                c.with_window += 1;
                if at < w.start_ms {
                    c.early += 1;
                } else if at > w.end_ms {
                    c.late += 1;
                } else {
                    c.on_time += 1;
                }
            }
            // Arrival to departure; a driver who reports before leaving (the stop is done,
            // its departure no longer watched): arrival to the last outcome.
            let last_outcome = parcels
                .iter()
                .filter_map(|(_, p)| p.and_then(|p| p.outcome_ms))
                .max();
            if let (Some(a), Some(d)) = (stop.arrived_ms, stop.departed_ms.or(last_outcome)) {
                if d >= a {
                    c.stop_times_s.push(((d - a) / 1000) as u32);
                }
            }
        }
        f
    }
}
