//! [`Summary`]: route facts added up (per carrier, depot, driver or day: the caller groups), and
//! the [`Figures`] a carrier reads off them (rates, averages, percentiles).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{horizon_label, Counts, RouteFacts};

/// Facts of any number of routes, added up.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Routes added.
    pub routes: u32,
    /// Their numbers, added up.
    #[serde(flatten)]
    pub counts: Counts,
}

/// What a carrier reads: the figures of a [`Summary`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Routes.
    pub routes: u32,
    /// Stops with a parcel to deliver.
    pub stops: u32,
    /// Stops reached.
    pub stops_served: u32,
    /// Parcels.
    pub parcels: u32,
    /// Delivered.
    pub delivered: u32,
    /// Failed attempts.
    pub failed: u32,
    /// Reached stops with a promised window.
    pub stops_with_window: u32,
    /// Share of those reached inside the window (none without such stops).
    pub on_time_rate: Option<f64>,
    /// Reached before the window.
    pub early: u32,
    /// Reached after the window.
    pub late: u32,
    /// First attempts.
    pub first_attempts: u32,
    /// Share of first attempts that delivered.
    pub first_attempt_rate: Option<f64>,
    /// Failed attempts by reason code.
    pub failed_by_reason: BTreeMap<String, u32>,
    /// Mean time at a stop, seconds.
    pub stop_time_avg_s: Option<f64>,
    /// 90th percentile of the time at a stop (nearest rank), seconds.
    pub stop_time_p90_s: Option<f64>,
    /// Stops reached per hour under way.
    pub stops_per_hour: Option<f64>,
    /// Distance driven, km.
    pub distance_km: f64,
    /// Stall alerts.
    pub stalls: u32,
    /// Running-late alerts.
    pub late_alerts: u32,
    /// Accuracy of the ETAs recipients were shown, per horizon bucket.
    pub eta: Vec<HorizonFigures>,
}

/// Published-ETA accuracy of one horizon bucket.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HorizonFigures {
    /// Stops ahead, e.g. `2-3`.
    pub horizon: String,
    /// ETAs scored.
    pub n: u32,
    /// Mean absolute error, seconds.
    pub mae_s: Option<f64>,
    /// Mean signed error (shown less arrival: positive, the driver came earlier), seconds.
    pub bias_s: Option<f64>,
}

fn ratio(a: u32, b: u32) -> Option<f64> {
    (b > 0).then(|| f64::from(a) / f64::from(b))
}

impl Summary {
    /// Adds one route's facts.
    pub fn add(&mut self, f: &RouteFacts) {
        self.routes += 1;
        self.counts.add(&f.counts);
    }

    /// The figures.
    pub fn figures(&self) -> Figures {
        let c = &self.counts;
        let mut times = c.stop_times_s.clone();
        times.sort_unstable();
        let avg = (!times.is_empty())
            .then(|| times.iter().map(|&t| f64::from(t)).sum::<f64>() / times.len() as f64);
        let p90 = (!times.is_empty()).then(|| {
            let rank = (times.len() * 9).div_ceil(10).max(1);
            f64::from(times[rank - 1])
        });
        let hours = c.working_s as f64 / 3600.0;
        Figures {
            routes: self.routes,
            stops: c.stops,
            stops_served: c.stops_served,
            parcels: c.parcels,
            delivered: c.delivered,
            failed: c.failed,
            stops_with_window: c.with_window,
            on_time_rate: ratio(c.on_time, c.with_window),
            early: c.early,
            late: c.late,
            first_attempts: c.first_attempts,
            first_attempt_rate: ratio(c.first_attempt_delivered, c.first_attempts),
            failed_by_reason: c.failed_by_reason.clone(),
            stop_time_avg_s: avg,
            stop_time_p90_s: p90,
            stops_per_hour: (c.working_s > 0).then(|| f64::from(c.stops_served) / hours),
            distance_km: c.driven_m / 1000.0,
            stalls: c.stalls,
            late_alerts: c.late_alerts,
            eta: c
                .eta
                .iter()
                .enumerate()
                .map(|(b, a)| {
                    let n = f64::from(a.n);
                    HorizonFigures {
                        horizon: horizon_label(b),
                        n: a.n,
                        mae_s: (a.n > 0).then(|| a.abs_s / n),
                        bias_s: (a.n > 0).then(|| a.signed_s / n),
                    }
                })
                .collect(),
        }
    }
}
