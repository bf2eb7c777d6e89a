//! The Parquet export of one carrier's day (`src/analytics/export.rs`) at scale: a history
//! database holding ROUTES closed routes of PARCELS parcels, each parcel with MILESTONES
//! milestones (defaults 2,000 x 50 x 10 = 1,000,000 parcel events), all planned on one day; the
//! export of that day (routes, stops, parcel_events) is timed, three times, and the median
//! printed with the rows and bytes written. Issue 22's target: a day of 1M parcel events in
//! at most 10 s on this machine.
//!
//! Run: `cargo bench --bench export` (env `ROUTES`, `PARCELS`, `MILESTONES`).

use std::time::Instant;

use milepost::analytics::export::export_day;
use milepost::history::{History, HistoryConfig};
use milepost::tenancy::Carriers;
use milepost_core::analytics::RouteFacts;
use milepost_core::fleet::progress::StopPhase;
use milepost_core::fleet::view::{RouteView, StopView};
use milepost_core::history::{Closed, Closing, ParcelHistory, RouteHistory};
use milepost_proto::route::{ParcelEvent, ParcelState, ParcelStatus, ParcelUpdate, TimeWindow};

/// 2026-02-16 08:00 UTC.
const T0: i64 = 1_771_228_800_000;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn closing(r: usize, parcels: usize, milestones: usize) -> Closing {
    let id = format!("R{r:05}");
    let tracking = |p: usize| format!("T{r:05}-{p:03}");
    let stops: Vec<StopView> = (0..parcels)
        .map(|p| {
            let at = T0 + (p as i64 + 1) * 300_000;
            StopView {
                id: format!("S{p}").as_str().into(),
                phase: StopPhase::Done,
                passed: false,
                behind: false,
                stops_away: None,
                arrived_ms: Some(at),
                departed_ms: Some(at + 90_000),
                eta: None,
                window: Some(TimeWindow {
                    start_ms: at - 1_800_000,
                    end_ms: at + 1_800_000,
                }),
                planned_arrival_ms: Some(at),
                parcels: vec![(tracking(p).as_str().into(), ParcelState::Delivered)],
            }
        })
        .collect();
    let view = RouteView {
        route_id: id.as_str().into(),
        depot: "north".into(),
        driver: format!("D{r}").as_str().into(),
        started_ms: Some(T0),
        finished_ms: Some(T0 + (parcels as i64 + 1) * 300_000),
        last_fix_t_ms: None,
        progress_m: None,
        speed_mps: 8.0,
        detour: 1.2,
        pace: 1.0,
        off_route: false,
        stalled: false,
        stops,
    };
    let closed_ms = T0 + 12 * 3_600_000;
    let parcel_histories = (0..parcels)
        .map(|p| {
            let t = tracking(p);
            ParcelHistory {
                tracking: t.as_str().into(),
                depot: "north".into(),
                routes: vec![id.as_str().into()],
                status: ParcelStatus {
                    tracking: t.as_str().into(),
                    route_id: id.as_str().into(),
                    stop: format!("S{p}").as_str().into(),
                    state: ParcelState::Delivered,
                    stops_away: None,
                    eta_ms: None,
                    earliest_ms: None,
                    latest_ms: None,
                    window: None,
                    last_event: None,
                },
                milestones: (0..milestones)
                    .map(|k| ParcelUpdate {
                        tracking: t.as_str().into(),
                        fix_t_ms: T0 + k as i64 * 60_000,
                        kind: match k {
                            0 => ParcelEvent::OutForDelivery,
                            1 => ParcelEvent::ArrivingSoon,
                            2 => ParcelEvent::Arrived,
                            n => ParcelEvent::StopsAway { n: n as u32 },
                        },
                    })
                    .collect(),
                closed: Closed::Archived,
                closed_ms,
            }
        })
        .collect();
    Closing {
        route: RouteHistory {
            view: view.clone(),
            planned_start_ms: T0,
            closed: Closed::Archived,
            closed_ms,
        },
        parcels: parcel_histories,
        facts: RouteFacts::of(&view, T0, None, |_| false),
    }
}

fn main() {
    let routes = env_num("ROUTES", 2_000);
    let parcels = env_num("PARCELS", 50);
    let milestones = env_num("MILESTONES", 10);
    let dir = tempfile::tempdir().unwrap();
    let history = History::open(&dir.path().join("history.redb"), &HistoryConfig::default())
        .expect("history database");
    let t = Instant::now();
    for chunk in (0..routes).collect::<Vec<_>>().chunks(50) {
        let closings: Vec<Closing> = chunk
            .iter()
            .map(|&r| closing(r, parcels, milestones))
            .collect();
        history.record(&closings).expect("history write");
    }
    println!(
        "history: {routes} routes x {parcels} parcels x {milestones} milestones = {} parcel events, written in {:.1} s",
        routes * parcels * milestones,
        t.elapsed().as_secs_f64()
    );
    let carriers = Carriers::default();
    let day = chrono::NaiveDate::from_ymd_opt(2026, 2, 16).unwrap();
    let depots = vec!["north".to_owned()];
    let mut secs = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let e = export_day(&history, &carriers, &depots, "default", day).expect("export");
        let s = t.elapsed().as_secs_f64();
        let bytes: usize = e.files.iter().map(|(_, b)| b.len()).sum();
        println!(
            "export: {} routes, {} parcel events, {:.1} MB of Parquet in {s:.2} s",
            e.routes,
            e.parcel_events,
            bytes as f64 / 1e6
        );
        secs.push(s);
    }
    secs.sort_by(f64::total_cmp);
    println!("median export time: {:.2} s", secs[1]);
}
