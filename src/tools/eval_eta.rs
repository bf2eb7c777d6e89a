//! `milepost eval-eta`: how good are the core's ETAs on real vehicles?
//!
//! Replays each recorded trip's pings through a [`FleetCore`] (the route loaded from the same
//! route JSON the gateway loads), and at every ping records the predicted arrival of every later
//! stop. The observed arrival at stop k is the first ping of the trip with
//! `current_stop_sequence == k` and `current_status == 1` (STOPPED_AT); stops never seen
//! STOPPED_AT are not scored. Predictions are scored by horizon: how many stops ahead the
//! stop was when predicted (1 = the next stop). The timetable (predicted = scheduled arrival)
//! is scored on exactly the same (ping, stop) pairs as a baseline.
//!
//! Nothing from the future leaks in: the core sees the pings up to the prediction time only;
//! observed arrivals are used only to score and to bucket.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use milepost_proto::route::Route;
use milepost_proto::Fix;
use serde::Serialize;

use crate::tools::eval_published::{bucket_of, Published, Scorer};
use crate::tools::gtfs::{self, Ping};
use milepost_core::fleet::config::CoreConfig;
use milepost_core::fleet::engine::FleetCore;
use milepost_core::fleet::route::RouteJson;

/// Arguments of `milepost eval-eta`.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalEtaArgs {
    /// Recorded GTFS-realtime VehiclePositions CSV.
    #[arg(long)]
    pub realtime: PathBuf,
    /// GTFS directory: routes are converted in memory (as `gtfs-to-route` would write them).
    #[arg(long, conflicts_with = "routes")]
    pub gtfs: Option<PathBuf>,
    /// Directory of `<trip>.route.json` files written by `gtfs-to-route`.
    #[arg(long)]
    pub routes: Option<PathBuf>,
    /// UTC offset of the GTFS times (with --gtfs).
    #[arg(long, default_value = "-05:00", allow_hyphen_values = true)]
    pub utc_offset: String,
    /// Stop geofence radius (with --gtfs), metres.
    #[arg(long, default_value_t = gtfs::BUS_STOP_RADIUS_M)]
    pub radius_m: f64,
    /// Dwell before an arrival is declared, seconds (bus pings come every ~30 s).
    #[arg(long, default_value_t = 0.0)]
    pub dwell_s: f64,
    /// Override the ETA model's schedule weight (0 = distance/speed only, 1 = timetable x pace).
    #[arg(long)]
    pub schedule_weight: Option<f64>,
    /// Also write the table as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also print the published view's scores (what recipients were sent: windows, "N stops
    /// away", "Arriving soon", arrivals); the JSON always has them.
    #[arg(long)]
    pub published: bool,
}

/// One horizon bucket of the table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bucket {
    /// Label, e.g. "2-3".
    pub horizon: String,
    /// Predictions scored.
    pub n: u64,
    /// Mean absolute error of the core, seconds.
    pub mae_s: f64,
    /// Mean signed error (predicted - observed) of the core, seconds.
    pub bias_s: f64,
    /// Mean absolute error of the timetable on the same pairs, seconds.
    pub schedule_mae_s: f64,
    /// Mean signed error of the timetable, seconds.
    pub schedule_bias_s: f64,
}

/// The evaluation's result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalTable {
    /// Trips replayed.
    pub trips: usize,
    /// Pings fed to the core.
    pub pings: usize,
    /// Rows by horizon, predictions made once the vehicle has left its first stop.
    pub buckets: Vec<Bucket>,
    /// Rows by horizon, every prediction, including those made while the vehicle still waited
    /// at its terminal (when it leaves is a dispatch decision no position can predict).
    pub buckets_all: Vec<Bucket>,
    /// What recipients were sent, scored ([`crate::tools::eval_published`]).
    pub published: Published,
    /// Rows of the recording that could not be read: row number (1 = the first data row) and
    /// why.
    pub skipped_rows: Vec<(u64, String)>,
    /// The published-view issue's targets, each met or missed by how much
    /// ([`crate::tools::eval_targets`]).
    pub targets: Vec<crate::tools::eval_targets::Target>,
}

use milepost_core::analytics::{horizon_label, HORIZONS};

/// The core configuration used for buses: geofence from the route, no dwell by default, and
/// ETA priors for a city bus.
pub fn bus_config(dwell_s: f64, schedule_weight: Option<f64>) -> CoreConfig {
    let mut cfg = CoreConfig {
        dwell_ms: (dwell_s * 1000.0) as i64,
        // Pings 30 s apart: at 50 km/h a bus moves 400 m between two; search that far ahead.
        window_ahead_m: 600.0,
        ..CoreConfig::default()
    };
    cfg.eta.prior_speed_mps = 5.0;
    // Tuned on the WMATA C53 recording (see docs/ROUTES.md): a bus timetable is a good model
    // of the road; what matters is the current delay, carried forward, with the learned pace
    // trusted only for the next few minutes.
    cfg.eta.schedule_weight = 0.9;
    cfg.eta.pace_prior_s = 900.0;
    cfg.eta.pace_tau_s = 300.0;
    cfg.eta.pace_horizon_s = 600.0;
    cfg.eta.delay_recovery_s = 3600.0;
    if let Some(w) = schedule_weight {
        cfg.eta.schedule_weight = w;
    }
    cfg
}

/// Runs the evaluation and prints the table.
///
/// # Errors
/// Unreadable inputs; neither `--gtfs` nor `--routes` given.
pub fn run(args: EvalEtaArgs) -> anyhow::Result<()> {
    let (pings, skipped) = gtfs::read_realtime_checked(&args.realtime)?;
    let routes = load_routes(&args, &pings)?;
    let mut table = evaluate(
        &routes,
        &pings,
        &bus_config(args.dwell_s, args.schedule_weight),
    );
    table.skipped_rows = skipped;
    print!("{}", render(&table));
    if !table.skipped_rows.is_empty() {
        println!(
            "{} rows of the recording skipped (first ones below; all in the JSON):",
            table.skipped_rows.len()
        );
        for (row, why) in table.skipped_rows.iter().take(10) {
            println!("  row {row}: {why}");
        }
    }
    let core_mae: Vec<f64> = table.buckets.iter().map(|b| b.mae_s).collect();
    table.targets = crate::tools::eval_targets::check(&core_mae, &table.published);
    if args.published {
        print!("{}", crate::tools::eval_published::render(&table.published));
        print!("{}", crate::tools::eval_targets::render(&table.targets));
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&table)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Loads the routes the evaluation replays, always through [`Route::from_json`].
///
/// # Errors
/// Unreadable or invalid route files.
pub fn load_routes(
    args: &EvalEtaArgs,
    pings: &BTreeMap<String, Vec<Ping>>,
) -> anyhow::Result<Vec<Route>> {
    match (&args.gtfs, &args.routes) {
        (Some(dir), _) => {
            let offset = gtfs::parse_utc_offset(&args.utc_offset)?;
            let routes = gtfs::convert(dir, offset, args.radius_m, None, Some(pings))?;
            // `convert` already round-trips through JSON; do it again here to make the
            // contract visible: the evaluation reads route files, nothing else.
            routes
                .iter()
                .map(|r| Route::from_json(&r.to_json()).map_err(Into::into))
                .collect()
        }
        (None, Some(dir)) => read_route_dir(dir),
        (None, None) => bail!("give --gtfs DIR or --routes DIR"),
    }
}

/// Reads every `*.route.json` of a directory.
fn read_route_dir(dir: &Path) -> anyhow::Result<Vec<Route>> {
    let mut routes = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.to_string_lossy().ends_with(".route.json") {
            let text = std::fs::read_to_string(&path)?;
            routes.push(Route::from_json(&text).with_context(|| format!("{}", path.display()))?);
        }
    }
    routes.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(routes)
}

/// Replays every route's trip and scores the predictions (see the module doc).
pub fn evaluate(
    routes: &[Route],
    pings: &BTreeMap<String, Vec<Ping>>,
    cfg: &CoreConfig,
) -> EvalTable {
    // Per bucket: n, sum |e|, sum e, sum |e_sched|, sum e_sched; under way, then all.
    let mut acc = [[[0.0f64; 5]; HORIZONS.len()]; 2];
    let (mut trips, mut fed) = (0, 0);
    let mut out = Vec::new();
    let mut scorer = Scorer::default();
    // The window calibration carries from trip to trip, as it does across a gateway's routes.
    let mut calibration = milepost_core::fleet::calibrate::Calibration::default();
    for route in routes {
        let Some(trip) = pings.get(gtfs::trip_of(route)) else {
            continue;
        };
        let seq_of: Vec<Option<u32>> = route.stops.iter().map(gtfs::sequence_of).collect();
        let idx_of: HashMap<u32, usize> = seq_of
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some(((*s)?, i)))
            .collect();
        let mut observed: HashMap<u32, i64> = HashMap::new();
        for p in trip.iter().filter(|p| p.status == 1) {
            observed.entry(p.stop_sequence).or_insert(p.t_ms);
        }
        let first_seq = seq_of.first().copied().flatten().unwrap_or(0);
        let mut core = FleetCore::new(cfg.clone());
        core.restore_calibration(std::mem::take(&mut calibration));
        if core
            .assign_route(route.clone(), trip.first().map_or(0, |p| p.t_ms))
            .is_err()
        {
            calibration = core.calibration().clone();
            continue;
        }
        trips += 1;
        scorer.start_trip(
            seq_of
                .iter()
                .map(|s| s.and_then(|k| observed.get(&k)).copied())
                .collect(),
            route
                .stops
                .iter()
                .enumerate()
                .flat_map(|(j, s)| s.parcels.iter().map(move |p| (p.tracking.0.clone(), j)))
                .collect(),
            route
                .stops
                .iter()
                .enumerate()
                .map(|(j, s)| (s.id.0.clone(), j))
                .collect(),
        );
        for p in trip {
            let mut fix = Fix::from_degrees(p.t_ms, p.lat, p.lon, 10.0);
            fix.speed_mps = p.speed_mps;
            fix.heading_deg = p.bearing_deg;
            out.clear();
            core.on_fix(&route.driver, &fix, &mut out);
            fed += 1;
            let c_idx = idx_of.get(&p.stop_sequence).copied();
            // Stopped at c: the next stop is 1 ahead; in transit to c: c is 1 ahead.
            let base = c_idx.map(|c| c as i64 - i64::from(p.status != 1));
            let under_way = p.stop_sequence > first_seq;
            scorer.on_updates(p.t_ms, base.filter(|_| under_way), &out);
            let Some(base) = base else {
                continue;
            };
            let Some(view) = core.route_view(&route.id) else {
                continue;
            };
            for sv in &view.stops {
                let (Some(eta), Some(planned)) = (sv.eta, sv.planned_arrival_ms) else {
                    continue;
                };
                let Some(j) = route.stops.iter().position(|s| s.id == sv.id) else {
                    continue;
                };
                let Some(obs) = seq_of[j].and_then(|k| observed.get(&k)).copied() else {
                    continue;
                };
                if obs <= p.t_ms {
                    continue;
                }
                let Some(b) = bucket_of(j as i64 - base) else {
                    continue;
                };
                let e = (eta.eta_ms - obs) as f64 / 1000.0;
                let es = (planned - obs) as f64 / 1000.0;
                for (k, a) in acc.iter_mut().enumerate() {
                    if k == 1 || under_way {
                        let a = &mut a[b];
                        a[0] += 1.0;
                        a[1] += e.abs();
                        a[2] += e;
                        a[3] += es.abs();
                        a[4] += es;
                    }
                }
            }
        }
        calibration = core.calibration().clone();
    }
    let [under_way, all] = acc.map(|acc| {
        acc.iter()
            .enumerate()
            .map(|(b, a)| {
                let n = a[0].max(1.0);
                Bucket {
                    horizon: horizon_label(b),
                    n: a[0] as u64,
                    mae_s: a[1] / n,
                    bias_s: a[2] / n,
                    schedule_mae_s: a[3] / n,
                    schedule_bias_s: a[4] / n,
                }
            })
            .collect::<Vec<_>>()
    });
    EvalTable {
        trips,
        pings: fed,
        buckets: under_way,
        buckets_all: all,
        published: scorer.finish(),
        skipped_rows: Vec::new(),
        targets: Vec::new(),
    }
}

/// The table as text.
pub fn render(t: &EvalTable) -> String {
    let mut s = format!("ETA evaluation: {} trips, {} pings\n", t.trips, t.pings);
    for (title, rows) in [
        ("vehicle under way (left its first stop)", &t.buckets),
        (
            "all predictions (incl. waiting at the terminal)",
            &t.buckets_all,
        ),
    ] {
        let _ = writeln!(s, "{title}");
        let _ = writeln!(
            s,
            "{:>12} {:>8} {:>9} {:>9} {:>13} {:>13}",
            "stops ahead", "n", "MAE s", "bias s", "sched MAE s", "sched bias s"
        );
        for b in rows {
            let _ = writeln!(
                s,
                "{:>12} {:>8} {:>9.1} {:>9.1} {:>13.1} {:>13.1}",
                b.horizon, b.n, b.mae_s, b.bias_s, b.schedule_mae_s, b.schedule_bias_s
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parameter sweep behind `bus_config` (run by hand when the model changes):
    /// `cargo test --release --lib eval_eta::tests::sweep -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn sweep() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/wmata_bus_C53");
        if !dir.exists() {
            return;
        }
        let pings = gtfs::read_realtime(&dir.join("vehicle_positions_2026-02-16.csv")).unwrap();
        let radius = gtfs::BUS_STOP_RADIUS_M;
        let routes = gtfs::convert(&dir.join("gtfs"), -18_000, radius, None, Some(&pings)).unwrap();
        let mut vars: Vec<(String, CoreConfig)> = vec![("default".into(), bus_config(0.0, None))];
        for w in [0.85, 0.9] {
            for rec in [3600.0, 5400.0] {
                for tau in [300.0, 900.0] {
                    for v0 in [4.0, 6.0] {
                        let mut c = bus_config(0.0, Some(w));
                        c.eta.delay_recovery_s = rec;
                        c.eta.speed_tau_s = tau;
                        c.eta.prior_speed_mps = v0;
                        vars.push((format!("w{w} rec{rec} tau{tau} v0{v0}"), c));
                    }
                }
            }
        }
        for (name, cfg) in vars {
            let t = evaluate(&routes, &pings, &cfg);
            let m: Vec<String> = t
                .buckets
                .iter()
                .map(|b| format!("{:.0}/{:.0}", b.mae_s, b.bias_s))
                .collect();
            eprintln!("{name}: {}", m.join(" "));
        }
    }

    /// Runs the whole evaluation on the WMATA C53 sample when it is present (it is never part of
    /// the repository), and checks the table is complete and beats the timetable.
    #[test]
    fn wmata_c53_table() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/wmata_bus_C53");
        if !dir.exists() {
            eprintln!("skipped: {} absent", dir.display());
            return;
        }
        let args = EvalEtaArgs {
            realtime: dir.join("vehicle_positions_2026-02-16.csv"),
            gtfs: Some(dir.join("gtfs")),
            routes: None,
            utc_offset: "-05:00".into(),
            radius_m: gtfs::BUS_STOP_RADIUS_M,
            dwell_s: 0.0,
            schedule_weight: None,
            json: None,
            published: true,
        };
        let pings = gtfs::read_realtime(&args.realtime).unwrap();
        let routes = load_routes(&args, &pings).unwrap();
        let table = evaluate(&routes, &pings, &bus_config(0.0, None));
        eprintln!("{}", render(&table));
        assert!(table.trips > 50);
        assert_eq!(table.buckets.len(), 5);
        for b in &table.buckets {
            assert!(b.n > 100, "{b:?}");
            assert!(b.mae_s < b.schedule_mae_s, "{b:?}");
        }
        // What recipients were sent: never an estimate already past, windows that hold the
        // arrival, arrivals detected where the bus stopped.
        let p = &table.published;
        eprintln!("{}", crate::tools::eval_published::render(p));
        // The windows hold 90 % of arrivals up to 10 stops ahead, no wider than 8 minutes there
        // (the targets, which the formula's two knobs were tuned to on this day).
        for (k, b) in p.buckets.iter().enumerate() {
            assert!(b.n > 100, "{b:?}");
            assert_eq!(b.past_share, 0.0, "{b:?}");
            match k < 4 {
                true => assert!(b.window_coverage >= 0.9 && b.window_p50_s <= 480.0, "{b:?}"),
                false => assert!(b.window_coverage > 0.8, "{b:?}"),
            }
        }
        // Arrivals seen where the feed saw them (its 50 m zone), the count of stops before
        // the next one right, and no "Arriving soon" from a bus laid over on its route.
        assert!(
            p.arrival_recall > 0.9 && p.arrival_precision > 0.95,
            "{p:?}"
        );
        assert!(p.buckets[0].stops_away_exact > 0.9, "{p:?}");
        assert!(p.false_arriving_soon <= 1, "{p:?}");

        // The file path gives the same routes: convert to a directory, read it back.
        let out = tempfile::tempdir().unwrap();
        gtfs::run(gtfs::GtfsArgs {
            gtfs: dir.join("gtfs"),
            realtime: Some(args.realtime.clone()),
            service_date: None,
            utc_offset: "-05:00".into(),
            radius_m: gtfs::BUS_STOP_RADIUS_M,
            out: out.path().to_owned(),
        })
        .unwrap();
        let from_files = read_route_dir(out.path()).unwrap();
        let mut sorted = routes.clone();
        sorted.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(from_files, sorted);
        assert!(out
            .path()
            .join(format!("{}.trace.csv", gtfs::trip_of(&sorted[0])))
            .exists());
    }
}
