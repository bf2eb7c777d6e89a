//! Analytics on scripted routes whose figures are known by construction: facts read off a
//! hand-made view and tally, and the fold's tally of a route driven record by record.

use milepost_proto::route::{
    FailureReason, Outcome, Parcel, ParcelState, Point, Proof, Route, Stop, TimeWindow,
};
use milepost_proto::{Fix, Seq};

use super::*;
use crate::feed::FeedConfig;
use crate::fleet::config::CoreConfig;
use crate::fleet::geo_util::M_PER_DEG;
use crate::fleet::progress::StopPhase;
use crate::fleet::view::{RouteView, StopView};
use crate::fold::Fleet;
use crate::store::{BatchEntry, LogRecord};

const T0: i64 = 1_771_243_200_000;
const LAT: f64 = 38.9;

fn stop(id: &str, window: Option<(i64, i64)>, arrived: Option<i64>, stay_s: i64) -> StopView {
    StopView {
        id: id.into(),
        phase: StopPhase::Done,
        passed: false,
        behind: false,
        stops_away: None,
        arrived_ms: arrived,
        departed_ms: arrived.map(|a| a + stay_s * 1000),
        eta: None,
        window: window.map(|(s, e)| TimeWindow {
            start_ms: T0 + s * 1000,
            end_ms: T0 + e * 1000,
        }),
        planned_arrival_ms: None,
        parcels: vec![],
    }
}

fn parcels(v: &[(&str, ParcelState)]) -> Vec<(TrackingNumber, ParcelState)> {
    v.iter().map(|(t, s)| ((*t).into(), *s)).collect()
}

/// Four stops: on time, late, no window, early; one failed attempt, one re-attempt, one parcel
/// withdrawn by its recipient.
fn scripted() -> (RouteView, RouteTally) {
    let at = |s: i64| Some(T0 + s * 1000);
    let mut s0 = stop("S0", Some((0, 600)), at(300), 120);
    s0.parcels = parcels(&[("T0", ParcelState::Delivered)]);
    let mut s1 = stop("S1", Some((0, 600)), at(900), 60);
    s1.parcels = parcels(&[("T1", ParcelState::Failed)]);
    let mut s2 = stop("S2", None, at(1500), 180);
    s2.parcels = parcels(&[("T2", ParcelState::Delivered)]);
    let mut s3 = stop("S3", Some((3000, 3600)), at(2000), 30);
    s3.parcels = parcels(&[
        ("T3", ParcelState::OutForDelivery),
        ("T4", ParcelState::Delivered),
    ]);
    let view = RouteView {
        route_id: "R1".into(),
        depot: "D1".into(),
        driver: "d1".into(),
        started_ms: Some(T0),
        finished_ms: Some(T0 + 3_600_000),
        last_fix_t_ms: Some(T0 + 3_600_000),
        progress_m: None,
        speed_mps: 8.0,
        detour: 1.0,
        pace: 1.0,
        off_route: false,
        stalled: false,
        stops: vec![s0, s1, s2, s3],
    };
    let mut tally = RouteTally {
        driven_m: 12_345.0,
        stalls: 2,
        late_alerts: 1,
        ..RouteTally::default()
    };
    let mut t0 = ParcelTally::default();
    // Shown 60 s late at 1 stop ahead, 120 s early at 2-3 ahead.
    t0.shown[0] = Some(T0 + 360_000);
    t0.shown[1] = Some(T0 + 180_000);
    tally.parcels.insert("T0".into(), t0);
    tally.parcels.insert(
        "T1".into(),
        ParcelTally {
            failure: Some(FailureReason::AccessProblem),
            ..ParcelTally::default()
        },
    );
    tally.parcels.insert(
        "T2".into(),
        ParcelTally {
            earlier_failures: 1,
            ..ParcelTally::default()
        },
    );
    (view, tally)
}

#[test]
fn facts_of_a_scripted_route() {
    let (view, tally) = scripted();
    let f = RouteFacts::of(&view, T0, Some(&tally), |t| t.0 == "T3");
    assert_eq!(
        (f.counts.stops, f.counts.stops_served, f.counts.with_window),
        (4, 4, 3)
    );
    assert_eq!((f.counts.on_time, f.counts.late, f.counts.early), (1, 1, 1));
    assert_eq!(
        (f.counts.parcels, f.counts.delivered, f.counts.failed),
        (4, 3, 1)
    );
    assert_eq!(
        (f.counts.first_attempts, f.counts.first_attempt_delivered),
        (3, 2)
    );
    assert_eq!(f.counts.failed_by_reason.get("access_problem"), Some(&1));
    assert_eq!(f.counts.stop_times_s, vec![120, 60, 180, 30]);
    assert_eq!(f.counts.working_s, 3600);
    assert_eq!((f.counts.stalls, f.counts.late_alerts), (2, 1));
    assert_eq!(f.counts.eta[0].n, 1);
    assert_eq!(f.counts.eta[0].signed_s, 60.0);
    assert_eq!(f.counts.eta[1].signed_s, -120.0);
    assert_eq!(f.counts.eta[1].abs_s, 120.0);

    let mut sum = Summary::default();
    sum.add(&f);
    sum.add(&f);
    let g = sum.figures();
    assert_eq!(g.routes, 2);
    assert_eq!(g.on_time_rate, Some(1.0 / 3.0));
    assert_eq!(g.first_attempt_rate, Some(2.0 / 3.0));
    assert_eq!(g.stop_time_avg_s, Some(97.5));
    // Eight times: 30 30 60 60 120 120 180 180; nearest rank ceil(7.2) = 8th.
    assert_eq!(g.stop_time_p90_s, Some(180.0));
    assert_eq!(g.stops_per_hour, Some(4.0));
    assert!((g.distance_km - 24.69).abs() < 1e-9);
    assert_eq!(g.eta[0].horizon, "1");
    assert_eq!(g.eta[0].mae_s, Some(60.0));
    assert_eq!(g.eta[1].horizon, "2-3");
    assert_eq!(g.eta[1].bias_s, Some(-120.0));
    assert_eq!(g.eta[2].n, 0);
    assert_eq!(g.eta[2].mae_s, None);
    assert_eq!(g.failed_by_reason.get("access_problem"), Some(&2));
}

#[test]
fn an_empty_summary_has_no_rates() {
    let g = Summary::default().figures();
    assert_eq!(g.routes, 0);
    assert_eq!(g.on_time_rate, None);
    assert_eq!(g.first_attempt_rate, None);
    assert_eq!(g.stop_time_p90_s, None);
    assert_eq!(g.stops_per_hour, None);
    assert_eq!(g.eta.len(), HORIZONS.len());
}

#[test]
fn horizons() {
    assert_eq!(horizon_of(0), None);
    assert_eq!(horizon_of(1), Some(0));
    assert_eq!(horizon_of(3), Some(1));
    assert_eq!(horizon_of(20), Some(4));
    assert_eq!(horizon_of(21), None);
    let labels: Vec<String> = (0..HORIZONS.len()).map(horizon_label).collect();
    assert_eq!(labels, ["1", "2-3", "4-6", "7-10", "11-20"]);
}

fn dlon(m: f64) -> f64 {
    m / (M_PER_DEG * LAT.to_radians().cos())
}

/// Three stops 300 m apart on a street.
fn street() -> Route {
    Route {
        id: "R1".into(),
        depot: "D1".into(),
        driver: "d1".into(),
        planned_start_ms: T0,
        start: Some(Point { lat: LAT, lon: 0.0 }),
        stops: (0..3)
            .map(|k| Stop {
                id: format!("S{k}").as_str().into(),
                lat: LAT,
                lon: dlon(300.0 * (k + 1) as f64),
                radius_m: None,
                parcels: vec![Parcel {
                    tracking: format!("T{k}").as_str().into(),
                    otp: None,
                }],
                window: None,
                service_s: Some(60),
                planned_arrival_ms: None,
                path: vec![],
                instructions: String::new(),
                otp_required: false,
            })
            .collect(),
    }
}

struct Day {
    fleet: Fleet,
    t: i64,
    seq: u64,
}

impl Day {
    fn apply(&mut self, rec: LogRecord) {
        let (mut out, mut touched) = (Vec::new(), Vec::new());
        self.fleet.parts().apply(&rec, &mut out, &mut touched);
    }

    fn fix(&mut self, dt_s: i64, x_m: f64) {
        self.t += dt_s * 1000;
        self.seq += 1;
        let fix = Fix::from_degrees(self.t, LAT, dlon(x_m), 5.0);
        self.apply(LogRecord::Batch {
            driver: "d1".into(),
            depot: "D1".into(),
            received_ms: self.t,
            entries: vec![BatchEntry::Accepted {
                seq: Seq(self.seq),
                fix,
            }],
        });
    }

    fn drive(&mut self, from: f64, to: f64) {
        let mut x = from;
        while x < to {
            x = (x + 8.0).min(to);
            self.fix(1, x);
        }
    }

    fn outcome(&mut self, stop: &str, outcome: Outcome) {
        self.apply(LogRecord::OutcomeReported {
            driver: "d1".into(),
            stop: stop.into(),
            tracking: None,
            outcome,
            at_ms: self.t,
        });
    }
}

fn delivered() -> Outcome {
    Outcome::Delivered {
        proof: Proof {
            photo_sha256: Some("ab".repeat(32)),
            signature_sha256: None,
            otp: None,
        },
    }
}

#[test]
fn the_fold_tallies_a_route_driven_record_by_record() {
    let mut day = Day {
        fleet: Fleet::new(CoreConfig::default(), &FeedConfig::default()),
        t: T0,
        seq: 0,
    };
    day.apply(LogRecord::RouteAssigned {
        route: street(),
        at_ms: T0,
    });
    day.fix(1, 0.0);
    day.drive(0.0, 300.0);
    for _ in 0..30 {
        day.fix(1, 300.0);
    }
    day.outcome("S0", delivered());
    day.drive(300.0, 600.0);
    for _ in 0..30 {
        day.fix(1, 600.0);
    }
    day.outcome(
        "S1",
        Outcome::Failed {
            reason: FailureReason::Refused,
            note: String::new(),
        },
    );
    day.drive(600.0, 900.0);
    for _ in 0..30 {
        day.fix(1, 900.0);
    }
    day.outcome("S2", delivered());

    let f = day.fleet.core.route_facts(&"R1".into()).unwrap();
    assert!(f.finished_ms.is_some());
    assert_eq!((f.counts.stops, f.counts.stops_served), (3, 3));
    assert_eq!((f.counts.delivered, f.counts.failed), (2, 1));
    assert_eq!(
        (f.counts.first_attempts, f.counts.first_attempt_delivered),
        (3, 2)
    );
    assert_eq!(f.counts.failed_by_reason.get("refused"), Some(&1));
    // Driven from the route's start (detected on leaving the depot's radius) to the last stop.
    assert!(
        f.counts.driven_m > 700.0 && f.counts.driven_m <= 900.5,
        "{}",
        f.counts.driven_m
    );
    // The third stop was shown at 2-3 stops ahead and at 1 ahead, and scored at its arrival.
    assert!(f.counts.eta[1].n >= 1, "{:?}", f.counts.eta);
    assert!(f.counts.eta[0].n >= 1, "{:?}", f.counts.eta);
    assert_eq!(
        f.counts.stop_times_s.len(),
        3,
        "{:?}",
        f.counts.stop_times_s
    );

    // A snapshot keeps the tally; archiving forgets it.
    assert_eq!(day.fleet.core.tally().len(), 1);
    day.apply(LogRecord::RoutesArchived {
        routes: vec!["R1".into()],
        at_ms: day.t,
    });
    assert!(day.fleet.core.tally().is_empty());
}
