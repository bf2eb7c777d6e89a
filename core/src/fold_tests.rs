//! The fold of one partition of depots is a function of that partition's records alone: a
//! gateway that folds only the depots it owns reaches the same feeds as one that folds
//! everything, and a released partition folded again from its records comes back the same.

use milepost_proto::route::{DepotId, FailureReason, Outcome, Parcel, Point, Proof, Route, Stop};
use milepost_proto::{DriverId, Fix, Seq};

use super::*;
use crate::feed::FeedConfig;
use crate::fleet::config::CoreConfig;
use crate::fleet::geo_util::M_PER_DEG;
use crate::store::record::partition_of_depot;

const T0: i64 = 1_771_243_200_000;
const PARTS: u32 = 4;

/// A depot's street: `stops` stops 300 m apart, east of a start at `lat`.
fn street(depot: &str, lat: f64, stops: usize) -> Route {
    let dlon = |m: f64| m / (M_PER_DEG * lat.to_radians().cos());
    Route {
        id: format!("R-{depot}").as_str().into(),
        depot: DepotId(depot.into()),
        driver: format!("d-{depot}").as_str().into(),
        planned_start_ms: T0,
        start: Some(Point { lat, lon: 0.0 }),
        stops: (0..stops)
            .map(|k| Stop {
                id: format!("S{k}").as_str().into(),
                lat,
                lon: dlon(300.0 * (k + 1) as f64),
                radius_m: None,
                parcels: vec![Parcel {
                    tracking: format!("{depot}-T{k}").as_str().into(),
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

/// A day of two depots in different partitions, their records interleaved as a stream would
/// hold them: assignments, fixes along the street with dwells at the stops, outcomes, ticks of
/// each partition (one long enough to stall a driver) and an alert handled.
fn day(a: &str, b: &str) -> Vec<LogRecord> {
    let mut recs = Vec::new();
    let routes = [street(a, 38.9, 3), street(b, 45.8, 4)];
    for r in &routes {
        recs.push(LogRecord::RouteAssigned {
            route: r.clone(),
            at_ms: T0,
        });
    }
    // Drive 8 m a second from stop to stop, dwelling 40 s at each.
    let mut xs = Vec::new();
    let mut x = 0.0f64;
    for k in 1..=4 {
        while x < 300.0 * k as f64 {
            x = (x + 8.0).min(300.0 * k as f64);
            xs.push(x);
        }
        xs.extend(std::iter::repeat_n(x, 40));
    }
    let mut t = T0;
    let mut seq = 0u64;
    for (step, &x) in xs.iter().enumerate() {
        t += 1000;
        seq += 1;
        for (i, r) in routes.iter().enumerate() {
            let lat = if i == 0 { 38.9 } else { 45.8 };
            let lon = (x + i as f64 * 3.0) / (M_PER_DEG * f64::to_radians(lat).cos());
            recs.push(LogRecord::Batch {
                driver: r.driver.clone(),
                depot: r.depot.0.clone(),
                received_ms: t,
                entries: vec![BatchEntry::Accepted {
                    seq: Seq(seq),
                    fix: Fix::from_degrees(t, lat, lon, 5.0),
                }],
            });
        }
        if step % 10 == 0 {
            for r in &routes {
                recs.push(LogRecord::DepotTick {
                    partition: partition_of_depot(&r.depot.0, PARTS),
                    partitions: PARTS,
                    now_ms: t,
                });
            }
        }
        // The second depot's first stop fails (an NDR next step follows, counted by the
        // core's book), then its second is delivered.
        if step == 160 {
            recs.push(LogRecord::OutcomeReported {
                driver: routes[1].driver.clone(),
                stop: "S1".into(),
                tracking: None,
                outcome: Outcome::Failed {
                    reason: FailureReason::Refused,
                    note: String::new(),
                },
                at_ms: t,
            });
        }
        if step == 100 {
            for r in &routes {
                recs.push(LogRecord::OutcomeReported {
                    driver: r.driver.clone(),
                    stop: "S0".into(),
                    tracking: None,
                    outcome: Outcome::Delivered {
                        proof: Proof {
                            photo_sha256: Some("ab".repeat(32)),
                            signature_sha256: None,
                            otp: None,
                        },
                    },
                    at_ms: t,
                });
            }
        }
    }
    // Ten minutes without a fix: both drivers stall.
    for r in &routes {
        recs.push(LogRecord::DepotTick {
            partition: partition_of_depot(&r.depot.0, PARTS),
            partitions: PARTS,
            now_ms: t + 600_000,
        });
    }
    recs
}

/// The core of a gateway folding owned partitions: windows calibrated per partition, and
/// calibrated from the first arrivals on (so that a calibration learned from another
/// partition's routes would show in this one's windows).
fn cfg() -> CoreConfig {
    let mut c = CoreConfig {
        calibration_groups: PARTS,
        ..CoreConfig::default()
    };
    c.eta.calibrate = true;
    c.eta.calibration_samples = 1.0;
    c
}

fn fold(recs: &[LogRecord], keep: impl Fn(&LogRecord) -> bool, fleet: &mut Fleet) {
    let (mut out, mut touched) = (Vec::new(), Vec::new());
    for r in recs.iter().filter(|r| keep(r)) {
        fleet.parts().apply(r, &mut out, &mut touched);
    }
}

/// The depot a record of [`day`] is about.
fn depot_of(r: &LogRecord, a: &str, b: &str) -> u32 {
    let of = |d: &str| partition_of_depot(d, PARTS);
    match r {
        LogRecord::DepotTick { partition, .. } => *partition,
        LogRecord::OutcomeReported { driver, .. } => {
            of(if driver.0 == format!("d-{a}") { a } else { b })
        }
        other => of(other.depot().expect("a record naming its depot")),
    }
}

fn feeds(f: &Fleet, depot: &str, parcels: usize) -> Vec<Vec<(u64, Update)>> {
    let mut v: Vec<_> = (0..parcels)
        .map(|k| {
            f.feed
                .parcel_after(&format!("{depot}-T{k}").as_str().into(), 0, 1000)
        })
        .collect();
    v.push(
        f.feed
            .depot_after(&DepotId(depot.into()), 0, 1000)
            .expect("depot feed"),
    );
    v
}

/// Two depot names in different partitions.
fn two_depots() -> (String, String) {
    let a = "north".to_string();
    let b = (0..)
        .map(|i| format!("south-{i}"))
        .find(|b| partition_of_depot(b, PARTS) != partition_of_depot(&a, PARTS))
        .expect("a depot in another partition");
    (a, b)
}

#[test]
fn a_partition_folded_alone_has_the_feeds_of_the_whole_fold() {
    let (a, b) = two_depots();
    let recs = day(&a, &b);
    let pb = partition_of_depot(&b, PARTS);
    let mut all = Fleet::new(cfg(), &FeedConfig::default());
    fold(&recs, |_| true, &mut all);
    let mut only_b = Fleet::new(cfg(), &FeedConfig::default());
    fold(&recs, |r| depot_of(r, &a, &b) == pb, &mut only_b);

    let whole = feeds(&all, &b, 4);
    assert!(whole[0].len() >= 2, "{:?}", whole[0]);
    assert!(!whole[4].is_empty(), "no depot events");
    assert_eq!(feeds(&only_b, &b, 4), whole);
    assert!(only_b
        .core
        .route_view(&format!("R-{a}").as_str().into())
        .is_none());
}

#[test]
fn a_released_partition_folded_again_comes_back_the_same() {
    let (a, b) = two_depots();
    let recs = day(&a, &b);
    let pb = partition_of_depot(&b, PARTS);
    let mut fleet = Fleet::new(cfg(), &FeedConfig::default());
    fold(&recs, |_| true, &mut fleet);
    let (a_before, b_before) = (feeds(&fleet, &a, 3), feeds(&fleet, &b, 4));
    assert!(
        b_before[1]
            .iter()
            .any(|(_, u)| matches!(u, Update::Parcel(p) if matches!(p.kind, milepost_proto::route::ParcelEvent::Failed { .. }))),
        "{:?}",
        b_before[1]
    );
    let db: DriverId = format!("d-{b}").as_str().into();
    assert!(fleet.positions.get(&db).is_some());

    let (routes, drivers) = fleet.parts().release(&[pb], PARTS);
    assert_eq!((routes, drivers), (1, 1));
    assert!(fleet.positions.get(&db).is_none());
    assert_eq!(fleet.ledger.watermark(&db), Seq(0));
    assert!(fleet
        .core
        .route_view(&format!("R-{b}").as_str().into())
        .is_none());
    assert!(feeds(&fleet, &b, 4).iter().all(Vec::is_empty));
    // The other depot is untouched.
    assert_eq!(feeds(&fleet, &a, 3), a_before);
    assert!(fleet
        .positions
        .get(&format!("d-{a}").as_str().into())
        .is_some());

    // Taken back: its records folded again give the same feeds.
    fold(&recs, |r| depot_of(r, &a, &b) == pb, &mut fleet);
    assert_eq!(feeds(&fleet, &b, 4), b_before);
    assert_eq!(feeds(&fleet, &a, 3), a_before);
}

/// Partition `pb`'s image after its first `cut` records, through the codec, installed into a
/// fleet that already folded the whole of the other partition; then `pb`'s later records
/// folded on. `spoil` may damage the image first.
fn taken_over_at(
    recs: &[LogRecord],
    (a, b): (&str, &str),
    cut: usize,
    spoil: impl Fn(&mut crate::store::image::PartImage),
) -> Fleet {
    let pb = partition_of_depot(b, PARTS);
    let of_b: Vec<&LogRecord> = recs.iter().filter(|r| depot_of(r, a, b) == pb).collect();
    let mut from = Fleet::new(cfg(), &FeedConfig::default());
    // The gateway the image comes from folds both partitions.
    let (mut out, mut touched) = (Vec::new(), Vec::new());
    let mut seen = 0;
    for r in recs {
        let early = depot_of(r, a, b) != pb || {
            seen += 1;
            seen <= cut
        };
        if early {
            from.parts().apply(r, &mut out, &mut touched);
        }
    }
    let bytes = milepost_proto::encode(&from.parts().part_image(pb, PARTS, 7, 9)).unwrap();
    let mut image: crate::store::image::PartImage =
        milepost_proto::codec::decode_trusted(&bytes).unwrap();
    assert_eq!(
        (image.partition, image.lsn_next, image.taken_ms),
        (pb, 7, 9)
    );
    spoil(&mut image);
    let mut to = Fleet::new(cfg(), &FeedConfig::default());
    fold(recs, |r| depot_of(r, a, b) != pb, &mut to);
    to.parts().install(image);
    for r in &of_b[cut..] {
        to.parts().apply(r, &mut out, &mut touched);
    }
    to
}

#[test]
fn a_partition_image_installed_and_folded_on_is_the_whole_fold() {
    let (a, b) = two_depots();
    let recs = day(&a, &b);
    let pb = partition_of_depot(&b, PARTS);
    let mut all = Fleet::new(cfg(), &FeedConfig::default());
    fold(&recs, |_| true, &mut all);
    let (whole_a, whole_b) = (feeds(&all, &a, 3), feeds(&all, &b, 4));
    let db: DriverId = format!("d-{b}").as_str().into();
    let rb = format!("R-{b}").as_str().into();
    let n = recs.iter().filter(|r| depot_of(r, &a, &b) == pb).count();
    let mut spoiled_differs = false;
    // Before anything, at the start of the route, around each stop's dwell, after the failed
    // attempt, and at the very end.
    for cut in [0, 1, 40, 80, 120, 160, 200, 240, n - 1, n] {
        let to = taken_over_at(&recs, (&a, &b), cut, |_| {});
        assert_eq!(feeds(&to, &b, 4), whole_b, "cut at {cut}");
        assert_eq!(feeds(&to, &a, 3), whole_a, "cut at {cut}");
        assert_eq!(to.ledger.watermark(&db), all.ledger.watermark(&db));
        assert_eq!(to.positions.get(&db), all.positions.get(&db));
        assert_eq!(
            to.core.route_view(&rb),
            all.core.route_view(&rb),
            "cut at {cut}"
        );
        assert_eq!(
            to.core.failed_attempts(&format!("{b}-T1").as_str().into()),
            1
        );
        // The test has teeth: without the partition's calibration and the routes' windows,
        // the windows published after the cut differ.
        let spoiled = taken_over_at(&recs, (&a, &b), cut, |i| {
            i.core.calibration = None;
            i.core
                .windows
                .iter_mut()
                .for_each(|w| *w = Default::default());
        });
        spoiled_differs |= feeds(&spoiled, &b, 4) != whole_b;
    }
    assert!(
        spoiled_differs,
        "the calibration in the image changes nothing"
    );
}
