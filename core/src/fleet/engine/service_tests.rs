//! Tests of the core's self-service and thread ([`super::service`]): changes that take a parcel
//! off its route, the rate limit's hour, what a snapshot's service book puts back, and which
//! route a parcel on several (withdrawn, re-attempted) follows after a restore.

use milepost_proto::route::{
    DeliveryChange, DispatchEvent, MessageFrom, ParcelState, TimeWindow, TrackingNumber,
};

use super::tests::{fix_at, street, T0};
use super::*;

/// A street of `n` stops, its driver under way at the start.
fn core(n: usize) -> FleetCore {
    let mut core = FleetCore::new(CoreConfig::default());
    core.assign_route(street(n), T0).unwrap();
    let mut out = Vec::new();
    for (i, x) in [0.0, 80.0, 160.0, 200.0].into_iter().enumerate() {
        core.on_fix(&"d1".into(), &fix_at(T0 + 10_000 * i as i64, x), &mut out);
    }
    core
}

fn slot() -> DeliveryChange {
    DeliveryChange::Reschedule {
        window: TimeWindow {
            start_ms: T0 + 86_400_000,
            end_ms: T0 + 90_000_000,
        },
    }
}

#[test]
fn another_slot_takes_the_parcel_off_and_can_finish_the_route() {
    let mut c = core(2);
    let t0: TrackingNumber = "T0".into();
    let u = c.change_delivery(&t0, &slot(), T0 + 41_000).unwrap();
    assert!(u.iter().any(|u| matches!(
        u,
        Update::Driver(d) if matches!(d.kind, DriverEvent::DeliveryChanged { .. })
    )));
    // The stop is served: T1 is now the next stop's only parcel ahead.
    assert_eq!(c.parcel_status(&"T1".into()).unwrap().stops_away, Some(0));
    // The route's numbers leave it out (its own flag, whatever route it goes on next).
    let facts = c.route_facts(&"R1".into()).unwrap();
    assert_eq!((facts.counts.parcels, facts.counts.stops), (1, 1));
    assert!(c.parcel_status(&t0).unwrap().eta_ms.is_none());
    // Nothing more about it: no outcome, no other change, no message.
    let again = DeliveryChange::SafePlace {
        place: "porch".into(),
    };
    assert!(c.change_delivery(&t0, &again, T0 + 42_000).is_err());
    assert!(c
        .post_message(&t0, MessageFrom::Recipient, "hi", T0 + 42_000)
        .is_err());
    // The driver's route says so, and the other parcel's withdrawal finishes the route.
    let r = c.route_in_order(&"R1".into()).unwrap();
    assert!(r.stops[0].instructions.contains("do not deliver today"));
    let u = c
        .change_delivery(&"T1".into(), &slot(), T0 + 43_000)
        .unwrap();
    assert!(u.iter().any(|u| matches!(
        u,
        Update::Dispatch(d) if matches!(d.kind, DispatchEvent::RouteFinished { delivered: 0, failed: 2 })
    )));
}

#[test]
fn the_rate_limit_is_per_side_over_a_sliding_hour() {
    let mut c = core(1);
    let t: TrackingNumber = "T0".into();
    let per_hour = c.config().messages.per_hour as i64;
    for i in 0..per_hour {
        c.post_message(&t, MessageFrom::Recipient, "hi", T0 + i * 60_000)
            .unwrap();
    }
    let late = T0 + per_hour * 60_000;
    let e = c
        .post_message(&t, MessageFrom::Recipient, "hi", late)
        .unwrap_err();
    assert!(matches!(e, ServiceError::RateLimited { retry_after_s, .. } if retry_after_s <= 3_600));
    // The driver's side has its own count; an hour after the first, the recipient may again.
    c.post_message(&t, MessageFrom::Driver, "ok", late).unwrap();
    c.post_message(&t, MessageFrom::Recipient, "hi", T0 + 3_600_001)
        .unwrap();
    assert!(c
        .post_message(&t, MessageFrom::Recipient, " \n", T0 + 3_700_000)
        .is_err());
}

#[test]
fn a_snapshot_puts_the_book_and_the_withdrawal_back() {
    let mut c = core(2);
    c.change_delivery(&"T0".into(), &slot(), T0 + 41_000)
        .unwrap();
    c.count_failure(&"X9".into(), 2, T0);
    // Through the codec, as a snapshot file holds them (the withdrawal is not in the routes).
    let routes = milepost_proto::encode(&c.snapshot()).unwrap();
    let book = milepost_proto::encode(c.service_book()).unwrap();
    let snap: CoreSnapshot = milepost_proto::decode(&routes).unwrap();
    let mut back = FleetCore::restore(CoreConfig::default(), snap);
    back.restore_service(milepost_proto::decode(&book).unwrap());
    assert_eq!(back.failed_attempts(&"X9".into()), 2);
    assert!(matches!(
        back.delivery_change(&"T0".into()),
        Some((DeliveryChange::Reschedule { .. }, _))
    ));
    assert_eq!(
        back.parcel_status(&"T1".into()).unwrap().stops_away,
        Some(0)
    );
    assert_ne!(
        back.parcel_status(&"T0".into()).unwrap().state,
        ParcelState::Delivered
    );
}

#[test]
fn a_reattempted_parcel_follows_its_newest_route_after_a_restore_whatever_the_order() {
    use crate::fleet::outcome::OutcomeTarget;
    use milepost_proto::route::{FailureReason, Outcome};
    // T0 fails on R1 (which finishes), then goes on R2 with another driver; T1 was withdrawn
    // from R3 (still unfinished) and put on R4.
    let mut c = core(1);
    let failed = Outcome::Failed {
        reason: FailureReason::RecipientAbsent,
        note: String::new(),
    };
    c.report_outcome(
        &"d1".into(),
        &OutcomeTarget::Stop("S0".into()),
        &failed,
        T0 + 50_000,
    )
    .unwrap();
    let mut r2 = street(1);
    r2.id = "R2".into();
    r2.driver = "d2".into();
    c.assign_route(r2, T0 + 60_000).unwrap();
    let mut r3 = street(2);
    r3.id = "R3".into();
    r3.driver = "d3".into();
    r3.stops[0].parcels[0].tracking = "T1".into();
    r3.stops[1].parcels[0].tracking = "T3".into();
    c.assign_route(r3, T0 + 60_000).unwrap();
    c.change_delivery(&"T1".into(), &slot(), T0 + 61_000)
        .unwrap();
    let mut r4 = street(1);
    r4.id = "R4".into();
    r4.driver = "d4".into();
    r4.stops[0].parcels[0].tracking = "T1".into();
    c.assign_route(r4, T0 + 62_000).unwrap();
    let live = |c: &FleetCore, t: &str| c.parcel_status(&t.into()).unwrap().route_id;
    assert_eq!((live(&c, "T0"), live(&c, "T1")), ("R2".into(), "R4".into()));

    let json = serde_json::to_string(&c.snapshot()).unwrap();
    for reversed in [false, true] {
        let mut snap: CoreSnapshot = serde_json::from_str(&json).unwrap();
        snap.routes.sort_by(|a, b| a.plan.id.cmp(&b.plan.id));
        if reversed {
            snap.routes.reverse();
        }
        let back = FleetCore::restore(CoreConfig::default(), snap);
        assert_eq!(live(&back, "T0"), "R2".into(), "reversed: {reversed}");
        assert_eq!(live(&back, "T1"), "R4".into(), "reversed: {reversed}");
    }
}
