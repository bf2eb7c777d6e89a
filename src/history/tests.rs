//! The history database against a real redb file: what closing a route stores, merging across
//! a re-attempt route, replaying the same closing, listings by depot and day, retention.

use milepost_core::feed::FeedConfig;
use milepost_core::fleet::config::CoreConfig;
use milepost_core::fold::Fleet;
use milepost_core::history::{closing, Closed};
use milepost_core::store::LogRecord;
use milepost_proto::route::{FailureReason, Outcome, Parcel, ParcelState, Route, Stop};

use super::*;

const T0: i64 = 1_771_243_200_000; // 2026-02-16 12:00 UTC

pub(crate) fn route(id: &str, driver: &str, tracking: &[&str]) -> Route {
    Route {
        id: id.into(),
        depot: "north".into(),
        driver: driver.into(),
        planned_start_ms: T0,
        start: None,
        stops: tracking
            .iter()
            .enumerate()
            .map(|(k, t)| Stop {
                id: format!("S{k}").as_str().into(),
                lat: 38.9,
                lon: -77.0 + 0.01 * k as f64,
                radius_m: None,
                parcels: vec![Parcel {
                    tracking: (*t).into(),
                    otp: None,
                }],
                window: None,
                service_s: None,
                planned_arrival_ms: None,
                path: vec![],
                instructions: String::new(),
                otp_required: false,
            })
            .collect(),
    }
}

/// Folds `rec` into `fleet` and returns what it closed (read before the fold, as the shell
/// does).
fn fold(fleet: &mut Fleet, rec: LogRecord) -> Vec<milepost_core::history::Closing> {
    let closings = closing(&fleet.core, &fleet.feed, &rec);
    let result = fleet.parts().apply(&rec, &mut Vec::new(), &mut Vec::new());
    assert!(
        !matches!(result, Some(milepost_core::fold::CommandResult::Refused(_))),
        "{rec:?}: {result:?}"
    );
    closings
}

fn open(dir: &tempfile::TempDir) -> History {
    History::open(&dir.path().join("history.redb"), &HistoryConfig::default()).unwrap()
}

#[test]
fn a_parcel_keeps_one_history_across_a_failed_attempt_and_its_reattempt() {
    let dir = tempfile::tempdir().unwrap();
    let h = open(&dir);
    let mut fleet = Fleet::new(CoreConfig::default(), &FeedConfig::default());
    fold(
        &mut fleet,
        LogRecord::RouteAssigned {
            route: route("R1", "d1", &["T1", "T2"]),
            at_ms: T0,
        },
    );
    fold(
        &mut fleet,
        LogRecord::OutcomeReported {
            driver: "d1".into(),
            stop: "S0".into(),
            tracking: Some("T1".into()),
            outcome: Outcome::Failed {
                reason: FailureReason::RecipientAbsent,
                note: "no answer".into(),
            },
            at_ms: T0 + 1_000,
        },
    );
    fold(
        &mut fleet,
        LogRecord::OutcomeReported {
            driver: "d1".into(),
            stop: "S1".into(),
            tracking: None,
            outcome: Outcome::Delivered {
                proof: milepost_proto::route::Proof {
                    photo_sha256: Some("ab".repeat(32)),
                    ..Default::default()
                },
            },
            at_ms: T0 + 1_500,
        },
    );
    // R1 is finished; T1 goes out again on R2 while R1 is still live, then R1 is archived.
    fold(
        &mut fleet,
        LogRecord::RouteAssigned {
            route: route("R2", "d2", &["T1"]),
            at_ms: T0 + 2_000,
        },
    );
    let closings = fold(
        &mut fleet,
        LogRecord::RoutesArchived {
            routes: vec!["R1".into()],
            at_ms: T0 + 3_000,
        },
    );
    assert_eq!(closings.len(), 1);
    h.record(&closings).unwrap();
    // The archive did not take the re-attempted parcel's feed with it.
    assert!(!fleet.feed.parcel_after(&"T1".into(), 0, 100).is_empty());
    assert!(fleet.feed.parcel_after(&"T2".into(), 0, 100).is_empty());
    assert!(fleet.core.parcel_status(&"T1".into()).is_some());
    let t1 = h.parcel(&"T1".into()).unwrap().unwrap();
    assert_eq!(t1.status.state, ParcelState::Failed);
    assert_eq!(t1.closed, Closed::Archived);
    // Writing the same closing again (a replayed log) changes nothing.
    h.record(&closings).unwrap();
    assert_eq!(h.parcel(&"T1".into()).unwrap().unwrap(), t1);
    let r1_closings = closings.clone();

    let closings = fold(
        &mut fleet,
        LogRecord::RouteCancelled {
            route_id: "R2".into(),
            by: "test".into(),
            at_ms: T0 + 4_000,
        },
    );
    h.record(&closings).unwrap();
    let t1 = h.parcel(&"T1".into()).unwrap().unwrap();
    assert_eq!(t1.routes, vec![RouteId::from("R1"), RouteId::from("R2")]);
    assert_eq!(t1.closed, Closed::Cancelled);
    // A crash replays both closings after the history has both: nothing changes.
    h.record(&r1_closings).unwrap();
    h.record(&closings).unwrap();
    assert_eq!(h.parcel(&"T1".into()).unwrap().unwrap(), t1);
    assert!(t1
        .milestones
        .iter()
        .any(|m| matches!(m.kind, milepost_proto::route::ParcelEvent::Failed { .. })));
    assert_eq!(
        h.route(&"R1".into()).unwrap().unwrap().view.route_id,
        RouteId::from("R1")
    );
}

#[test]
fn routes_are_listed_by_depot_and_day_and_purged_after_retention() {
    let dir = tempfile::tempdir().unwrap();
    let h = open(&dir);
    let mut fleet = Fleet::new(CoreConfig::default(), &FeedConfig::default());
    for (id, d, t) in [("R1", "d1", "T1"), ("R2", "d2", "T2")] {
        fold(
            &mut fleet,
            LogRecord::RouteAssigned {
                route: route(id, d, &[t]),
                at_ms: T0,
            },
        );
    }
    let closings = fold(
        &mut fleet,
        LogRecord::RoutesArchived {
            routes: vec!["R1".into(), "R2".into()],
            at_ms: T0,
        },
    );
    h.record(&closings).unwrap();
    // R1's stops' addresses and trail go with it; R2 has neither.
    let r1 = RouteId::from("R1");
    h.record_addresses(&r1, &[("S1".into(), "Ilica 12".into())], T0)
        .unwrap();
    for (i, lat) in [45.80, 45.81, 45.81].into_iter().enumerate() {
        let fix = milepost_proto::Fix::from_degrees(T0 + i as i64 * 1_000, lat, 15.97, 5.0);
        h.trail_fixes(&r1, [&fix]);
    }
    h.flush().unwrap();
    assert_eq!(h.addresses(&r1).unwrap()["S1"], "Ilica 12");
    // The third fix is where the second was, a second later: thinned away.
    assert_eq!(h.trail(&r1, 0, i64::MAX).unwrap().len(), 2);
    // One run's span only (a route id may be used again).
    assert_eq!(h.trail(&r1, T0 + 500, i64::MAX).unwrap().len(), 1);
    // Addresses: a record replaces them all; a route assigned again keeps its stops' only.
    let two = [
        ("S1".into(), "Ilica 12".into()),
        ("S2".into(), "Vlaška 40".into()),
    ];
    h.record_addresses(&r1, &two, T0).unwrap();
    h.keep_addresses(&r1, &["S2".into(), "S9".into()]).unwrap();
    assert_eq!(h.addresses(&r1).unwrap().keys().collect::<Vec<_>>(), ["S2"]);
    h.record_addresses(&r1, &[("S1".into(), "Ilica 12".into())], T0)
        .unwrap();
    assert_eq!(h.addresses(&r1).unwrap().keys().collect::<Vec<_>>(), ["S1"]);
    let north = DepotId::from("north");
    assert_eq!(
        h.route_ids(&north, Some("2026-02-16"), 10).unwrap(),
        vec![RouteId::from("R1"), RouteId::from("R2")]
    );
    assert!(h
        .route_ids(&north, Some("2026-02-17"), 10)
        .unwrap()
        .is_empty());
    assert!(h.route_ids(&"south".into(), None, 10).unwrap().is_empty());
    assert_eq!(h.route_ids(&north, None, 1).unwrap().len(), 1);
    // Not yet due.
    assert_eq!(h.purge(T0 + 86_400_000).unwrap(), 0);
    assert!(h.parcel(&"T1".into()).unwrap().is_some());
    // 90 days and a minute later: both routes and both parcels go.
    assert_eq!(h.purge(T0 + 90 * 86_400_000 + 60_000).unwrap(), 4);
    assert!(h.parcel(&"T1".into()).unwrap().is_none());
    assert!(h.route(&"R2".into()).unwrap().is_none());
    assert!(h.route_ids(&north, None, 10).unwrap().is_empty());
    assert!(h.addresses(&r1).unwrap().is_empty());
    assert!(h.trail(&r1, 0, i64::MAX).unwrap().is_empty());
}

#[test]
fn a_history_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::new(CoreConfig::default(), &FeedConfig::default());
    fold(
        &mut fleet,
        LogRecord::RouteAssigned {
            route: route("R1", "d1", &["T1"]),
            at_ms: T0,
        },
    );
    let closings = fold(
        &mut fleet,
        LogRecord::RouteCancelled {
            route_id: "R1".into(),
            by: "test".into(),
            at_ms: T0,
        },
    );
    open(&dir).record(&closings).unwrap();
    let again = open(&dir);
    assert_eq!(
        again.parcel(&"T1".into()).unwrap().unwrap().closed,
        Closed::Cancelled
    );
    // Cancelling an unknown route is refused by the fold and closes nothing.
    let rec = LogRecord::RouteCancelled {
        route_id: "R9".into(),
        by: "test".into(),
        at_ms: T0,
    };
    assert!(closing(&fleet.core, &fleet.feed, &rec).is_empty());
    assert_eq!(
        fleet.parts().apply(&rec, &mut Vec::new(), &mut Vec::new()),
        Some(milepost_core::fold::CommandResult::Refused(
            "no live route R9".into()
        ))
    );
}
