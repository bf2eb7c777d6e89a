//! `milepost eval-eta --published`: the recipient's view scored, not only the core's point
//! estimate. The same replay as [`crate::tools::eval_eta`] hands every update the fold would
//! have published to a [`Scorer`], which scores each against what really happened:
//!
//! - each `EtaChanged` a recipient was sent: its ETA's error, whether its window held the
//!   observed arrival, the window's width, and whether the ETA or the window's end was already
//!   in the past when it went out;
//! - each `StopsAway { n }`: whether `n` is the number of stops the vehicle really stopped at
//!   before this one from that moment (observed STOPPED_AT between then and this stop's
//!   arrival);
//! - each detected arrival (`StopArrived`) against the observed ones, within 60 s, both ways;
//! - `ArrivingSoon`: how long before the arrival it first showed, and whether it showed while
//!   more than 2 stops were still to be served first;
//! - how many updates a recipient's feed gets per stop.
//!
//! Errors are bucketed by horizon (stops ahead) as in the core table.

use std::collections::HashMap;

use milepost_core::analytics::{horizon_label, horizon_of, HORIZONS};
use milepost_proto::route::{DispatchEvent, ParcelEvent, Update};
use serde::Serialize;

/// A detected arrival counts if it is this close to an observed one, ms.
const ARRIVAL_MATCH_MS: i64 = 60_000;

/// One horizon bucket of the published view.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PublishedBucket {
    /// Label, e.g. "2-3".
    pub horizon: String,
    /// `EtaChanged` updates scored.
    pub n: u64,
    /// Mean absolute error of the published ETA, seconds.
    pub mae_s: f64,
    /// Mean signed error (published - observed), seconds.
    pub bias_s: f64,
    /// Share of updates whose window held the observed arrival.
    pub window_coverage: f64,
    /// Median window width, seconds.
    pub window_p50_s: f64,
    /// Share of updates whose ETA, or window end, was already past when published.
    pub past_share: f64,
    /// `StopsAway` updates scored.
    pub stops_away_n: u64,
    /// Share of them that were exact.
    pub stops_away_exact: f64,
}

/// The published view's scores.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Published {
    /// By horizon.
    pub buckets: Vec<PublishedBucket>,
    /// Observed arrivals with a detected arrival within 60 s.
    pub arrival_recall: f64,
    /// Detected arrivals within 60 s of an observed one.
    pub arrival_precision: f64,
    /// Median time from the first "Arriving soon" to the observed arrival, seconds.
    pub arriving_soon_lead_p50_s: Option<f64>,
    /// "Arriving soon" shown while more than 2 stops were still to be served first.
    pub false_arriving_soon: u64,
    /// Recipient updates per stop.
    pub updates_per_stop: f64,
}

#[derive(Default)]
struct Acc {
    n: u64,
    abs: f64,
    signed: f64,
    covered: u64,
    widths: Vec<f64>,
    past: u64,
    away_n: u64,
    away_exact: u64,
}

/// Scores one trip at a time, then the whole run.
#[derive(Default)]
pub struct Scorer {
    acc: [Acc; HORIZONS.len()],
    /// The current trip: observed arrival per stop index, and the stop index of a tracking
    /// number.
    observed: Vec<Option<i64>>,
    stop_of: HashMap<String, usize>,
    stop_index: HashMap<String, usize>,
    soon_first: HashMap<usize, i64>,
    detected: Vec<(usize, i64)>,
    observed_total: u64,
    recalled: u64,
    detected_total: u64,
    precise: u64,
    leads: Vec<f64>,
    false_soon: u64,
    updates: u64,
    stops: u64,
}

impl Scorer {
    /// A new trip: the observed arrival at each stop (route order), each parcel's stop index,
    /// each stop id's index.
    pub fn start_trip(
        &mut self,
        observed: Vec<Option<i64>>,
        stop_of: HashMap<String, usize>,
        stop_index: HashMap<String, usize>,
    ) {
        self.finish_trip();
        self.stops += observed.len() as u64;
        self.observed = observed;
        self.stop_of = stop_of;
        self.stop_index = stop_index;
    }

    /// Stops the vehicle really stopped at between `t` and stop `j`'s arrival, before `j`.
    fn served_before(&self, t: i64, j: usize) -> Option<u32> {
        let obs_j = self.observed.get(j).copied().flatten()?;
        Some(
            self.observed[..j]
                .iter()
                .flatten()
                .filter(|&&o| o > t && o < obs_j)
                .count() as u32,
        )
    }

    /// The updates published after a ping at `t`; `base` is the stop index the vehicle is at
    /// or heading to, less one when heading (so the next stop is 1 ahead), if known, and
    /// `None` while the vehicle still waits at its terminal (as the core table, the buckets
    /// score the vehicle under way; arrivals and "Arriving soon" are scored throughout).
    pub fn on_updates(&mut self, t: i64, base: Option<i64>, updates: &[Update]) {
        for u in updates {
            match u {
                Update::Parcel(p) => {
                    self.updates += 1;
                    let Some(&j) = self.stop_of.get(&p.tracking.0) else {
                        continue;
                    };
                    self.on_parcel_event(t, base, j, &p.kind);
                }
                Update::Dispatch(d) => {
                    if let DispatchEvent::StopArrived { stop, at_ms } = &d.kind {
                        if let Some(&j) = self.stop_index.get(&stop.0) {
                            self.detected.push((j, *at_ms));
                        }
                    }
                }
                Update::Driver(_) => {}
            }
        }
    }

    fn on_parcel_event(&mut self, t: i64, base: Option<i64>, j: usize, e: &ParcelEvent) {
        let Some(obs) = self.observed.get(j).copied().flatten() else {
            return;
        };
        if obs <= t {
            return;
        }
        if let ParcelEvent::ArrivingSoon = e {
            self.soon_first.entry(j).or_insert(t);
            if self.served_before(t, j).is_some_and(|n| n > 2) {
                self.false_soon += 1;
            }
            return;
        }
        let Some(b) = base.and_then(|base| bucket_of(j as i64 - base)) else {
            return;
        };
        match e {
            ParcelEvent::EtaChanged {
                eta_ms,
                earliest_ms,
                latest_ms,
            } => {
                let a = &mut self.acc[b];
                let err = (eta_ms - obs) as f64 / 1000.0;
                a.n += 1;
                a.abs += err.abs();
                a.signed += err;
                a.covered += u64::from(*earliest_ms <= obs && obs <= *latest_ms);
                a.widths.push((latest_ms - earliest_ms) as f64 / 1000.0);
                a.past += u64::from(*eta_ms < t || *latest_ms < t);
            }
            ParcelEvent::StopsAway { n } => {
                let truth = self.served_before(t, j);
                let a = &mut self.acc[b];
                a.away_n += 1;
                a.away_exact += u64::from(truth == Some(*n));
            }
            _ => {}
        }
    }

    /// Closes the current trip's arrival matching and leads.
    fn finish_trip(&mut self) {
        for (j, obs) in self.observed.iter().enumerate() {
            let Some(obs) = obs else { continue };
            self.observed_total += 1;
            let near = |&(k, at): &(usize, i64)| k == j && (at - obs).abs() <= ARRIVAL_MATCH_MS;
            self.recalled += u64::from(self.detected.iter().any(near));
            if let Some(first) = self.soon_first.get(&j) {
                self.leads.push((obs - first) as f64 / 1000.0);
            }
        }
        for &(k, at) in &self.detected {
            self.detected_total += 1;
            let hit = self
                .observed
                .get(k)
                .copied()
                .flatten()
                .is_some_and(|o| (at - o).abs() <= ARRIVAL_MATCH_MS);
            self.precise += u64::from(hit);
        }
        self.observed.clear();
        self.detected.clear();
        self.soon_first.clear();
    }

    /// The scores of every trip.
    pub fn finish(mut self) -> Published {
        self.finish_trip();
        let share = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let buckets = self
            .acc
            .iter_mut()
            .enumerate()
            .map(|(b, a)| {
                let n = a.n.max(1) as f64;
                PublishedBucket {
                    horizon: horizon_label(b),
                    n: a.n,
                    mae_s: a.abs / n,
                    bias_s: a.signed / n,
                    window_coverage: share(a.covered, a.n),
                    window_p50_s: median(&mut a.widths).unwrap_or(0.0),
                    past_share: share(a.past, a.n),
                    stops_away_n: a.away_n,
                    stops_away_exact: share(a.away_exact, a.away_n),
                }
            })
            .collect();
        Published {
            buckets,
            arrival_recall: share(self.recalled, self.observed_total),
            arrival_precision: share(self.precise, self.detected_total),
            arriving_soon_lead_p50_s: median(&mut self.leads),
            false_arriving_soon: self.false_soon,
            updates_per_stop: share(self.updates, self.stops),
        }
    }
}

/// The published view's scores as text.
pub fn render(p: &Published) -> String {
    use std::fmt::Write as _;
    let mut s = String::from("published view (what recipients were sent)\n");
    let _ = writeln!(
        s,
        "{:>12} {:>7} {:>8} {:>8} {:>9} {:>10} {:>6} {:>9}",
        "stops ahead", "n", "MAE s", "bias s", "coverage", "window s", "past", "away ok"
    );
    for b in &p.buckets {
        let _ = writeln!(
            s,
            "{:>12} {:>7} {:>8.1} {:>8.1} {:>9.3} {:>10.0} {:>6.3} {:>9.3}",
            b.horizon,
            b.n,
            b.mae_s,
            b.bias_s,
            b.window_coverage,
            b.window_p50_s,
            b.past_share,
            b.stops_away_exact
        );
    }
    let lead = p
        .arriving_soon_lead_p50_s
        .map_or("-".to_owned(), |l| format!("{l:.0} s"));
    let _ = writeln!(
        s,
        "arrivals: recall {:.3}, precision {:.3}; arriving soon: lead p50 {lead}, false {}; {:.1} updates per stop",
        p.arrival_recall, p.arrival_precision, p.false_arriving_soon, p.updates_per_stop
    );
    s
}

/// The bucket ([`HORIZONS`], the core's) of a horizon of `h` stops ahead.
pub fn bucket_of(h: i64) -> Option<usize> {
    u32::try_from(h).ok().and_then(horizon_of)
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use milepost_proto::route::{DispatchUpdate, ParcelUpdate};

    fn parcel(t: &str, kind: ParcelEvent) -> Update {
        Update::Parcel(ParcelUpdate {
            tracking: t.into(),
            fix_t_ms: 0,
            kind,
        })
    }

    #[test]
    fn published_updates_are_scored_against_what_happened() {
        let mut s = Scorer::default();
        // Three stops, observed at 100 s, 200 s and 300 s.
        let obs = vec![Some(100_000), Some(200_000), Some(300_000)];
        let stop_of = HashMap::from([("T0".into(), 0), ("T1".into(), 1), ("T2".into(), 2)]);
        let stop_index = HashMap::from([("S0".into(), 0), ("S1".into(), 1), ("S2".into(), 2)]);
        s.start_trip(obs, stop_of, stop_index);
        // At 10 s, heading to S0 (base -1): S2 is 3 ahead, an ETA 20 s late with a window
        // that holds the arrival; "2 stops away" is exact (S0, S1 come first).
        let eta = ParcelEvent::EtaChanged {
            eta_ms: 320_000,
            earliest_ms: 280_000,
            latest_ms: 340_000,
        };
        let ups = [
            parcel("T2", eta),
            parcel("T2", ParcelEvent::StopsAway { n: 2 }),
            parcel("T1", ParcelEvent::ArrivingSoon),
            parcel("T2", ParcelEvent::ArrivingSoon),
        ];
        s.on_updates(10_000, Some(-1), &ups);
        // A past window for S1 (1 stop ahead from S0).
        let stale = ParcelEvent::EtaChanged {
            eta_ms: 90_000,
            earliest_ms: 80_000,
            latest_ms: 95_000,
        };
        s.on_updates(110_000, Some(0), &[parcel("T1", stale)]);
        let arrived = Update::Dispatch(DispatchUpdate {
            route_id: "R".into(),
            driver: "d".into(),
            fix_t_ms: 0,
            kind: DispatchEvent::StopArrived {
                stop: "S0".into(),
                at_ms: 130_000,
            },
        });
        s.on_updates(130_000, Some(0), &[arrived]);
        let p = s.finish();
        let b23 = &p.buckets[1];
        assert_eq!((b23.n, b23.mae_s, b23.bias_s), (1, 20.0, 20.0));
        assert_eq!((b23.window_coverage, b23.window_p50_s), (1.0, 60.0));
        assert_eq!((b23.stops_away_n, b23.stops_away_exact), (1, 1.0));
        let b1 = &p.buckets[0];
        assert_eq!((b1.n, b1.past_share, b1.window_coverage), (1, 1.0, 0.0));
        // S0 detected 30 s late: precise and recalled; S1 and S2 never detected.
        assert_eq!(p.arrival_precision, 1.0);
        assert!((p.arrival_recall - 1.0 / 3.0).abs() < 1e-9);
        // "Arriving soon" for S1 (1 stop first) is fine, for S2 (2 first) too: none false.
        assert_eq!(p.false_arriving_soon, 0);
        assert_eq!(p.arriving_soon_lead_p50_s, Some(290.0));
        assert!((p.updates_per_stop - 5.0 / 3.0).abs() < 1e-9);
    }
}
