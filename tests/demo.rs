//! `milepost demo` end to end, sped up: a day laid on a trace, driven through a real gateway
//! over QUIC (fixes, dwell, uploads, outcomes from the driver's own session), and what a
//! recipient sees on the tracking page's JSON at the end, milestone by milestone.

mod common;
mod web_support;

use std::net::SocketAddr;

use milepost::replay::trace::TracePoint;
use milepost::tools::demo::{self, plan, DriveOptions, Step};
use milepost_proto::route::{ParcelEvent, ParcelState, Update};

/// A drive north: 30 points 50 m apart, one every 10 s.
fn street() -> Vec<TracePoint> {
    let t0 = common::now_ms() - 3_600_000;
    (0..30)
        .map(|i| TracePoint::new(t0 + i * 10_000, 45.27 + i as f64 * 0.00045, 13.71))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demo_day_is_delivered_and_the_recipients_see_it_happen() {
    let t = common::start_with(|c| {
        c.web.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        // Fast: arrival after 1 s inside a stop, and a driver shown at up to 300 m/s.
        c.core.dwell_ms = 1_000;
        c.validation.max_speed_mps = 1_000.0;
    })
    .await;
    let points = street();
    let day = plan::plan(
        &points,
        &plan::PlanOptions {
            stops: 6,
            speedup: 100.0,
            dwell_ms: 2_000,
            start_ms: common::now_ms(),
            route_id: "DEMO-T".into(),
            max_shown_mps: 300.0,
        },
    )
    .unwrap();
    assert!(day.stops.len() >= 4, "{}", day.stops.len());
    let web = t.gw.web_addr.unwrap();
    let (driver, links) = demo::links(&t.gw, &day, web, 3600);
    demo::assign(&t.gw, &day).await.unwrap();
    let opts = DriveOptions {
        dwell_ms: 2_000,
        dwell_fix_ms: 250,
    };
    let mut steps = Vec::new();
    demo::drive_day(&t.gw, &day, &points, &driver, &opts, |s| steps.push(s))
        .await
        .unwrap();
    assert_eq!(steps.first(), Some(&Step::Started));
    assert_eq!(steps.last(), Some(&Step::Finished));
    let outcomes = steps
        .iter()
        .filter(|s| matches!(s, Step::Outcome { .. }))
        .count();
    assert_eq!(outcomes, day.stops.len());

    let shared = t.gw.shared();
    {
        let core = milepost::state::lock(&shared.state.core);
        let feed = milepost::state::lock(&shared.state.feed);
        for (k, stop) in day.stops.iter().enumerate() {
            let tn = plan::tracking(k);
            let status = core.parcel_status(&tn.as_str().into()).unwrap();
            let want = match stop.action {
                plan::Action::Fail(_) => ParcelState::Failed,
                _ => ParcelState::Delivered,
            };
            assert_eq!(status.state, want, "{tn}: {status:?}");
            // What the recipient was told, in order: out for delivery, counting down, soon,
            // at the door, then the outcome.
            let kinds: Vec<&'static str> = feed
                .parcel_after(&tn.as_str().into(), 0, 1_000)
                .iter()
                .filter_map(|(_, u)| match u {
                    Update::Parcel(p) => Some(milepost_core::present::event_kind(&p.kind)),
                    _ => None,
                })
                .filter(|k| *k != "EtaChanged" && *k != "StopsAway")
                .collect();
            // A failed attempt is followed by what happens next (the NDR policy).
            let last: &[&str] = if want == ParcelState::Failed {
                &["Failed", "NextStep"]
            } else {
                &["Delivered"]
            };
            let mut expected = vec!["OutForDelivery", "ArrivingSoon", "Arrived"];
            expected.extend_from_slice(last);
            assert_eq!(kinds, expected, "{tn}");
            if let plan::Action::HandedTo(name) = stop.action {
                let shown = status.last_event.as_ref().unwrap().kind.delivery().unwrap();
                assert_eq!(shown.received_by, Some(name));
            }
        }
        // A parcel late in the day was counted down stop by stop.
        let late = plan::tracking(day.stops.len() - 1);
        let counts: Vec<u32> = feed
            .parcel_after(&late.as_str().into(), 0, 1_000)
            .iter()
            .filter_map(|(_, u)| match u {
                Update::Parcel(p) => match p.kind {
                    ParcelEvent::StopsAway { n } => Some(n),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        assert!(counts.windows(2).all(|w| w[0] > w[1]), "{counts:?}");
        assert!(counts.len() >= 2, "{counts:?}");
    }

    // The photos went up the upload stream and are stored.
    let photo_parcel = day
        .stops
        .iter()
        .position(|s| s.action == plan::Action::Photo)
        .unwrap();
    let store = &shared.proofs;
    let status = milepost::state::lock(&shared.state.core)
        .parcel_status(&plan::tracking(photo_parcel).as_str().into())
        .unwrap();
    let sha = status
        .last_event
        .unwrap()
        .kind
        .delivery()
        .unwrap()
        .proof
        .photo_sha256
        .clone();
    assert!(store.has(sha.as_deref().unwrap()));

    // The printed links open: the recipient's status over HTTP with the link's token.
    let (tn, url) = &links.parcels[0];
    let token = url.split("token=").nth(1).unwrap();
    let path = format!("/t/{tn}/status");
    let auth = format!("Bearer {token}");
    let r = web_support::request(web, "GET", &path, &[("Authorization", &auth)], None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"]["state"], "Delivered", "{}", r.text());
}

/// The binary, with `args`: (exit success, stderr).
fn milepost(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_milepost"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_busy_port_and_a_token_born_expired_are_refused_with_a_message() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().to_string();
    let (ok, err) = milepost(&["demo", "--listen", "127.0.0.1:0", "--web-listen", &port]);
    assert!(!ok);
    assert!(err.contains(&port) && err.contains("--web-listen"), "{err}");
    let (ok, err) = milepost(&[
        "token",
        "--role",
        "driver",
        "--subject",
        "d1",
        "--ttl",
        "0s",
        "--secret",
        "a-secret-of-at-least-32-characters-000",
    ]);
    assert!(!ok && err.contains("--ttl"), "{err}");
}

/// `milepost drive` on the example trace at 100x, as driver-042 of DC-NE, with `--route ARG`.
async fn drive_with_route(
    t: &common::TestGateway,
    route: std::ffi::OsString,
) -> std::process::Output {
    let driver = common::token(milepost::auth::Role::Driver, "driver-042", "DC-NE");
    let dispatcher = common::token(milepost::auth::Role::Dispatcher, "DC-NE", "DC-NE");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let (server, ca) = (t.gw.local_addr.to_string(), t.ca.clone());
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_milepost"))
            .args(["drive", "--server", &server, "--ca"])
            .arg(&ca)
            .args(["--token", &driver, "--dispatcher-token", &dispatcher])
            .arg("--route")
            .arg(route)
            .arg("--trace")
            .arg(root.join("examples/route-trace.gpx"))
            .args(["--speedup", "100"])
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// The example day replayed today: the route moved by the trace's offset, every stop reached.
fn assert_replayed_today(t: &common::TestGateway, run: &std::process::Output) {
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert!(err.contains("moved by"), "{err}");
    let core = milepost::state::lock(&t.gw.shared().state.core);
    let view = core.route_view(&"R-2026-02-16-017".into()).unwrap();
    let route = &core.run(&"R-2026-02-16-017".into()).unwrap().plan;
    // The trace starts at the route's planned start (12:00 on its day) and leaves the depot
    // a minute later: so does the drive, against the shifted plan.
    let left_depot = view.started_ms.unwrap_or(0);
    let now = common::now_ms();
    assert!(
        (now - 15 * 60_000..=now).contains(&route.planned_start_ms),
        "{}",
        route.planned_start_ms
    );
    assert!(
        (55_000..=90_000).contains(&(left_depot - route.planned_start_ms)),
        "started {left_depot}, planned {}",
        route.planned_start_ms
    );
    // Every stop was reached on the shifted plan's day.
    for s in &view.stops {
        assert!(s.arrived_ms.is_some(), "{s:?}");
    }
}

/// `drive --route FILE`: the recorded day's route and its trace move by the same offset, so
/// the plan stays where it was against the drive (examples/route.json and the synthetic trace
/// recorded on its planned day, 2026-02-16).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drive_with_its_route_replays_a_recorded_day_today() {
    let t = common::start().await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = drive_with_route(&t, root.join("examples/route.json").into()).await;
    assert_replayed_today(&t, &run);
}

/// `drive --route ID`: a route the gateway has loaded (here with its February times) is read
/// back from the gateway, moved with the trace and replaced; an id the depot has not loaded
/// is refused with a message that says what `--route` takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drive_on_a_loaded_route_moves_it_with_the_trace() {
    use milepost_core::fleet::route::RouteJson;
    let t = common::start().await;
    let mut dispatch = t.dispatcher("DC-NE").await;
    let route =
        milepost_proto::route::Route::from_json(include_str!("../examples/route.json")).unwrap();
    dispatch
        .command(1, milepost_proto::CommandKind::AssignRoute(route))
        .await
        .unwrap();
    // The plan comes back without its one-time codes: nobody but a recipient sees one.
    let asked = milepost_proto::CommandKind::GetRoute {
        route_id: "R-2026-02-16-017".into(),
    };
    let milepost_proto::ServerMsg::Route { route: read, .. } =
        dispatch.command(2, asked).await.unwrap()
    else {
        panic!("GetRoute answers a route");
    };
    assert!(read
        .stops
        .iter()
        .flat_map(|s| &s.parcels)
        .all(|p| p.otp.is_none()));
    let run = drive_with_route(&t, "R-2026-02-16-017".into()).await;
    assert_replayed_today(&t, &run);
    // Put back moved, it kept the live codes the plan was read without.
    {
        let core = milepost::state::lock(&t.gw.shared().state.core);
        let plan = &core.run(&"R-2026-02-16-017".into()).unwrap().plan;
        let code = plan
            .stops
            .iter()
            .flat_map(|s| &s.parcels)
            .find(|p| p.tracking.0 == "MP100000003")
            .and_then(|p| p.otp.clone());
        assert_eq!(code.as_deref(), Some("4821"));
    }
    // Moved once, it is no longer on the trace's day: a second drive refuses to move it again.
    let run = drive_with_route(&t, "R-2026-02-16-017".into()).await;
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(err.contains("moved already"), "{err}");

    let run = drive_with_route(&t, "R-nope".into()).await;
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(
        err.contains("depot DC-NE has no route R-nope loaded"),
        "{err}"
    );
    // Another depot's dispatcher is told the same: as if it did not exist.
    let mut other = t.dispatcher("DC-SW").await;
    let asked = milepost_proto::CommandKind::GetRoute {
        route_id: "R-2026-02-16-017".into(),
    };
    let refused = other.command(1, asked).await.unwrap_err();
    assert_eq!(refused.code(), Some(milepost_proto::ErrorCode::NotFound));
}
