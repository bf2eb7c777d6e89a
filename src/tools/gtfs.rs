//! `milepost gtfs-to-route`: turns a GTFS feed (stops, trips, stop_times, shapes) and an
//! optional recorded GTFS-realtime VehiclePositions CSV into Milepost route files, one per trip,
//! plus the trip's pings as a trace CSV.
//!
//! Why: transit agencies publish real vehicle traces with a planned stop sequence and timetable,
//! which is exactly what an ETA model needs to be measured against (see `eval_eta`). A bus trip
//! becomes a route whose stops each carry one pseudo-parcel (tracking `<trip>-<seq>`: the route
//! format requires a parcel per stop), the timetable's arrival as `planned_arrival_ms`, the
//! dwell (departure - arrival) as `service_s`, and the piece of the trip's shape from the
//! previous stop as `path`. Stop ids are `<stop_sequence>:<gtfs stop_id>`, unique even when a
//! trip visits a stop twice.
//!
//! GTFS times are local "HH:MM:SS" (possibly past 24:00) on a service date; the UTC offset is
//! given with `--utc-offset` (default `-05:00`, US Eastern standard time, right for the WMATA
//! February recording). There is no time-zone database here on purpose: a recording spans hours,
//! not a daylight-saving change.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use milepost_proto::route::{Parcel, Point, Route, Stop};

use milepost_core::fleet::geo_util::haversine_m;
use milepost_core::fleet::route::RouteJson;

/// A bus stop's geofence, metres. A transit AVL feed's `STOPPED_AT` means "in the stop's zone",
/// not "standing still": on the WMATA C53 day, 97 % of the first `STOPPED_AT` pings at a stop
/// lie within 50 m of it (median 41 m) and the bus is moving (median 7.6 m/s). A 30 m fence
/// saw 55 % of those arrivals; this one sees 93 % (docs/ROUTES.md).
pub const BUS_STOP_RADIUS_M: f64 = 50.0;

/// Arguments of `milepost gtfs-to-route`.
#[derive(Debug, Clone, clap::Args)]
pub struct GtfsArgs {
    /// Directory with stops.txt, trips.txt, stop_times.txt and shapes.txt.
    #[arg(long)]
    pub gtfs: PathBuf,
    /// Recorded GTFS-realtime VehiclePositions CSV: only its trips are converted, each on its
    /// own start date, and their pings are written as traces.
    #[arg(long)]
    pub realtime: Option<PathBuf>,
    /// Service date YYYYMMDD for every trip (required without --realtime).
    #[arg(long)]
    pub service_date: Option<String>,
    /// UTC offset of the feed's local times, e.g. `-05:00`.
    #[arg(long, default_value = "-05:00", allow_hyphen_values = true)]
    pub utc_offset: String,
    /// Geofence radius given to every stop, metres.
    #[arg(long, default_value_t = BUS_STOP_RADIUS_M)]
    pub radius_m: f64,
    /// Output directory (created): `<trip>.route.json` and `<trip>.trace.csv`.
    #[arg(long)]
    pub out: PathBuf,
}

/// One recorded ping of a vehicle on a trip.
#[derive(Clone, Debug, PartialEq)]
pub struct Ping {
    /// UTC ms.
    pub t_ms: i64,
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// Speed, m/s, if reported.
    pub speed_mps: Option<f32>,
    /// Bearing, degrees, if reported.
    pub bearing_deg: Option<f32>,
    /// `current_stop_sequence`.
    pub stop_sequence: u32,
    /// `current_status`: 1 = STOPPED_AT, 2 = IN_TRANSIT_TO (0 = INCOMING_AT).
    pub status: u8,
    /// Vehicle id.
    pub vehicle: String,
    /// The trip's start date, YYYYMMDD.
    pub start_date: String,
}

/// Runs the converter.
///
/// # Errors
/// Unreadable or malformed input files, an unwritable output directory.
pub fn run(args: GtfsArgs) -> anyhow::Result<()> {
    let offset_s = parse_utc_offset(&args.utc_offset)?;
    let pings = match &args.realtime {
        Some(p) => Some(read_realtime(p)?),
        None => None,
    };
    let routes = convert(
        &args.gtfs,
        offset_s,
        args.radius_m,
        args.service_date.as_deref(),
        pings.as_ref(),
    )?;
    fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    for route in &routes {
        let trip = trip_of(route);
        fs::write(args.out.join(format!("{trip}.route.json")), route.to_json())?;
        if let Some(p) = pings.as_ref().and_then(|m| m.get(trip)) {
            fs::write(args.out.join(format!("{trip}.trace.csv")), trace_csv(p))?;
        }
    }
    println!("wrote {} routes to {}", routes.len(), args.out.display());
    Ok(())
}

/// The GTFS trip id a converted route was made from.
pub fn trip_of(route: &Route) -> &str {
    route.id.0.strip_prefix("gtfs-").unwrap_or(&route.id.0)
}

/// The GTFS `stop_sequence` a converted stop was made from.
pub fn sequence_of(stop: &Stop) -> Option<u32> {
    stop.id.0.split(':').next()?.parse().ok()
}

/// Parses `-05:00`, `+0130`, `-5` into seconds east of UTC.
///
/// # Errors
/// Anything else.
pub fn parse_utc_offset(s: &str) -> anyhow::Result<i64> {
    let bad = || anyhow!("bad UTC offset {s:?} (expected e.g. -05:00)");
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'-') => (-1, &s[1..]),
        Some(b'+') => (1, &s[1..]),
        _ => (1, s),
    };
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() == 4 => rest.split_at(2),
        None => (rest, "0"),
    };
    let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 14 || m > 59 {
        return Err(bad());
    }
    Ok(sign * (h * 3600 + m * 60))
}

/// Reads a recorded VehiclePositions CSV (columns named as in the GTFS-realtime protobuf,
/// `vehicle.trip.trip_id` ...), grouped by trip, each sorted by time with repeated
/// timestamps dropped.
///
/// # Errors
/// Unreadable file or missing columns; malformed rows are skipped (see
/// [`read_realtime_checked`] for which).
pub fn read_realtime(path: &Path) -> anyhow::Result<BTreeMap<String, Vec<Ping>>> {
    Ok(read_realtime_checked(path)?.0)
}

/// Pings by trip, and the rows skipped: (row number, 1 = the first data row; why).
pub type Realtime = (BTreeMap<String, Vec<Ping>>, Vec<(u64, String)>);

/// Like [`read_realtime`], also naming every row that was skipped: its number (1 = the
/// first data row) and why.
///
/// # Errors
/// Unreadable file or missing columns.
pub fn read_realtime_checked(path: &Path) -> anyhow::Result<Realtime> {
    let mut rdr =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let headers = rdr.headers()?.clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| anyhow!("column {name} missing in {}", path.display()))
    };
    let (c_trip, c_lat, c_lon) = (
        col("vehicle.trip.trip_id")?,
        col("vehicle.position.latitude")?,
        col("vehicle.position.longitude")?,
    );
    let (c_seq, c_status, c_t) = (
        col("vehicle.current_stop_sequence")?,
        col("vehicle.current_status")?,
        col("vehicle.timestamp")?,
    );
    let c_speed = col("vehicle.position.speed").ok();
    let c_bearing = col("vehicle.position.bearing").ok();
    let c_vehicle = col("vehicle.vehicle.id").ok();
    let c_date = col("vehicle.trip.start_date").ok();
    let mut out: BTreeMap<String, Vec<Ping>> = BTreeMap::new();
    let mut skipped = Vec::new();
    for (row, rec) in rdr.records().enumerate() {
        let row = row as u64 + 1;
        let rec = match rec {
            Ok(rec) => rec,
            Err(e) => {
                skipped.push((row, format!("unreadable: {e}")));
                continue;
            }
        };
        let num = |c: usize| rec.get(c).and_then(|v| v.trim().parse::<f64>().ok());
        let opt = |c: Option<usize>| c.and_then(num).map(|v| v as f32);
        let (Some(trip), Some(lat), Some(lon), Some(seq), Some(t)) = (
            rec.get(c_trip),
            num(c_lat),
            num(c_lon),
            num(c_seq),
            num(c_t),
        ) else {
            skipped.push((
                row,
                "a trip id, position, stop sequence or timestamp is missing or not a number".into(),
            ));
            continue;
        };
        if trip.is_empty()
            || !lat.is_finite()
            || !lon.is_finite()
            || lat.abs() > 90.0
            || lon.abs() > 180.0
        {
            skipped.push((row, "no trip id, or a position off the globe".into()));
            continue;
        }
        out.entry(trip.to_owned()).or_default().push(Ping {
            t_ms: (t * 1000.0) as i64,
            lat,
            lon,
            speed_mps: opt(c_speed),
            bearing_deg: opt(c_bearing),
            stop_sequence: seq.max(0.0) as u32,
            status: num(c_status).unwrap_or(0.0) as u8,
            vehicle: c_vehicle.and_then(|c| rec.get(c)).unwrap_or("").to_owned(),
            start_date: c_date.and_then(|c| rec.get(c)).unwrap_or("").to_owned(),
        });
    }
    for pings in out.values_mut() {
        pings.sort_by_key(|p| p.t_ms);
        pings.dedup_by_key(|p| p.t_ms);
    }
    Ok((out, skipped))
}

/// A trace CSV of pings: `t_ms,lat,lon,speed_mps,bearing_deg,stop_sequence,status`.
pub fn trace_csv(pings: &[Ping]) -> String {
    let mut s = String::from("t_ms,lat,lon,speed_mps,bearing_deg,stop_sequence,status\n");
    for p in pings {
        let f = |v: Option<f32>| v.map(|x| x.to_string()).unwrap_or_default();
        s.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            p.t_ms,
            p.lat,
            p.lon,
            f(p.speed_mps),
            f(p.bearing_deg),
            p.stop_sequence,
            p.status
        ));
    }
    s
}

/// Converts the feed's trips into routes. With `pings`, only the recorded trips are converted,
/// each on its recorded start date and driven by its recorded vehicle; otherwise every trip on
/// `service_date`.
///
/// # Errors
/// Unreadable files, missing columns, bad times; a trip without a date.
pub fn convert(
    gtfs: &Path,
    utc_offset_s: i64,
    radius_m: f64,
    service_date: Option<&str>,
    pings: Option<&BTreeMap<String, Vec<Ping>>>,
) -> anyhow::Result<Vec<Route>> {
    let stops = read_table(&gtfs.join("stops.txt"))?;
    let trips = read_table(&gtfs.join("trips.txt"))?;
    let times = read_table(&gtfs.join("stop_times.txt"))?;
    let shapes = read_shapes(&gtfs.join("shapes.txt"))?;
    let stop_xy: HashMap<&str, (f64, f64)> = stops
        .iter()
        .filter_map(|r| {
            Some((
                r.get("stop_id")?.as_str(),
                (
                    r.get("stop_lat")?.parse().ok()?,
                    r.get("stop_lon")?.parse().ok()?,
                ),
            ))
        })
        .collect();
    let mut by_trip: HashMap<&str, Vec<&HashMap<String, String>>> = HashMap::new();
    for r in &times {
        if let Some(t) = r.get("trip_id") {
            by_trip.entry(t.as_str()).or_default().push(r);
        }
    }
    let mut routes = Vec::new();
    for trip in &trips {
        let Some(trip_id) = trip.get("trip_id") else {
            continue;
        };
        let recorded = pings.and_then(|m| m.get(trip_id));
        if pings.is_some() && recorded.is_none() {
            continue;
        }
        let date = match (
            recorded
                .and_then(|p| p.first())
                .map(|p| p.start_date.as_str()),
            service_date,
        ) {
            (Some(d), _) if !d.is_empty() => d.to_owned(),
            (_, Some(d)) => d.to_owned(),
            _ => bail!("trip {trip_id}: no service date (give --service-date)"),
        };
        let midnight_s = chrono::NaiveDate::parse_from_str(&date, "%Y%m%d")
            .with_context(|| format!("trip {trip_id}: bad date {date}"))?
            .and_hms_opt(0, 0, 0)
            .ok_or_else(|| anyhow!("bad date {date}"))?
            .and_utc()
            .timestamp();
        let to_utc_ms = |local: &str| -> anyhow::Result<i64> {
            Ok((midnight_s + parse_hms(local)? - utc_offset_s) * 1000)
        };
        let mut rows = by_trip.get(trip_id.as_str()).cloned().unwrap_or_default();
        rows.sort_by_key(|r| {
            r.get("stop_sequence")
                .and_then(|s| s.parse::<u32>().ok())
                .unwrap_or(0)
        });
        let shape = trip
            .get("shape_id")
            .and_then(|s| shapes.get(s))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let mut cut = 0usize;
        let mut stops_out = Vec::with_capacity(rows.len());
        for (k, r) in rows.iter().enumerate() {
            let sid = r.get("stop_id").map(String::as_str).unwrap_or("");
            let &(lat, lon) = stop_xy
                .get(sid)
                .ok_or_else(|| anyhow!("trip {trip_id}: unknown stop {sid}"))?;
            let seq = r.get("stop_sequence").map(String::as_str).unwrap_or("0");
            let arr = to_utc_ms(r.get("arrival_time").map(String::as_str).unwrap_or(""))?;
            let dep = r
                .get("departure_time")
                .and_then(|d| to_utc_ms(d).ok())
                .unwrap_or(arr);
            let next_cut = nearest_ahead(shape, cut, lat, lon);
            let path = if k == 0 || shape.is_empty() {
                Vec::new()
            } else {
                shape[cut..=next_cut].to_vec()
            };
            cut = next_cut;
            stops_out.push(Stop {
                id: format!("{seq}:{sid}").as_str().into(),
                lat,
                lon,
                radius_m: Some(radius_m),
                parcels: vec![Parcel {
                    tracking: format!("{trip_id}-{seq}").as_str().into(),
                    otp: None,
                }],
                window: None,
                service_s: Some(((dep - arr).max(0) / 1000) as u32),
                planned_arrival_ms: Some(arr),
                path,
                instructions: String::new(),
                otp_required: false,
            });
        }
        let vehicle = recorded
            .and_then(|p| p.first())
            .map(|p| p.vehicle.clone())
            .unwrap_or_default();
        let route = Route {
            id: format!("gtfs-{trip_id}").as_str().into(),
            depot: trip
                .get("route_id")
                .cloned()
                .unwrap_or_else(|| "gtfs".into())
                .as_str()
                .into(),
            driver: if vehicle.is_empty() {
                format!("trip-{trip_id}")
            } else {
                format!("vehicle-{vehicle}")
            }
            .as_str()
            .into(),
            planned_start_ms: stops_out
                .first()
                .and_then(|s| s.planned_arrival_ms)
                .unwrap_or(0),
            start: None,
            stops: stops_out,
        };
        // Round-trip through the route file format: what the gateway loads is what we made.
        routes.push(Route::from_json(&route.to_json()).with_context(|| format!("trip {trip_id}"))?);
    }
    Ok(routes)
}

/// Index of the shape point nearest to (lat, lon) at or after `from`, looking no further than
/// a few kilometres of shape ahead: on a shape that passes a place twice, the first pass wins.
fn nearest_ahead(shape: &[Point], from: usize, lat: f64, lon: f64) -> usize {
    let mut best = (f64::INFINITY, from);
    let mut along = 0.0;
    for j in from..shape.len() {
        if j > from {
            along += haversine_m(
                shape[j - 1].lat,
                shape[j - 1].lon,
                shape[j].lat,
                shape[j].lon,
            );
        }
        let d = haversine_m(shape[j].lat, shape[j].lon, lat, lon);
        if d < best.0 {
            best = (d, j);
        }
        // Stop once well past a good match, or too far along.
        if (best.0 < 30.0 && along > 2.0 * best.0 + 600.0 && j > best.1 + 5) || along > 5_000.0 {
            break;
        }
    }
    best.1
        .min(shape.len().saturating_sub(1))
        .max(from.min(shape.len().saturating_sub(1)))
}

/// "HH:MM:SS" (hours may exceed 23) to seconds.
fn parse_hms(s: &str) -> anyhow::Result<i64> {
    let mut it = s.trim().split(':').map(str::parse::<i64>);
    match (it.next(), it.next(), it.next()) {
        (Some(Ok(h)), Some(Ok(m)), Some(Ok(sec))) => Ok(h * 3600 + m * 60 + sec),
        _ => bail!("bad GTFS time {s:?}"),
    }
}

/// A CSV file as rows of column name -> value.
fn read_table(path: &Path) -> anyhow::Result<Vec<HashMap<String, String>>> {
    let mut rdr =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let headers: Vec<String> = rdr
        .headers()?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_owned())
        .collect();
    let mut rows = Vec::new();
    for rec in rdr.records() {
        let rec = rec.with_context(|| format!("reading {}", path.display()))?;
        rows.push(
            headers
                .iter()
                .cloned()
                .zip(rec.iter().map(str::to_owned))
                .collect(),
        );
    }
    Ok(rows)
}

/// shapes.txt as shape id -> points in sequence order.
fn read_shapes(path: &Path) -> anyhow::Result<HashMap<String, Vec<Point>>> {
    let mut pts: HashMap<String, Vec<(u32, Point)>> = HashMap::new();
    for r in read_table(path)? {
        let (Some(id), Some(lat), Some(lon), Some(seq)) = (
            r.get("shape_id"),
            r.get("shape_pt_lat").and_then(|v| v.parse().ok()),
            r.get("shape_pt_lon").and_then(|v| v.parse().ok()),
            r.get("shape_pt_sequence").and_then(|v| v.parse().ok()),
        ) else {
            continue;
        };
        pts.entry(id.clone())
            .or_default()
            .push((seq, Point { lat, lon }));
    }
    Ok(pts
        .into_iter()
        .map(|(id, mut v)| {
            v.sort_by_key(|(s, _)| *s);
            (id, v.into_iter().map(|(_, p)| p).collect())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_rows_are_named_not_dropped_silently() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vp.csv");
        let cols = "vehicle.trip.trip_id,vehicle.position.latitude,vehicle.position.longitude,\
                    vehicle.current_stop_sequence,vehicle.current_status,vehicle.timestamp";
        let rows = [
            "T1,38.9,-77.0,1,1,1771243200",
            "T1,38.9,-77.0,2,2,1771243200", // same time: kept once
            "T1,north,-77.0,2,2,1771243230",
            "T1,95.0,-77.0,2,2,1771243260",
            ",38.9,-77.0,2,2,1771243290",
            "T1,38.91,-77.0,3,1,1771243320",
        ];
        std::fs::write(&path, format!("{cols}\n{}\n", rows.join("\n"))).unwrap();
        let (trips, skipped) = read_realtime_checked(&path).unwrap();
        assert_eq!(trips["T1"].len(), 2);
        let rows: Vec<u64> = skipped.iter().map(|(r, _)| *r).collect();
        assert_eq!(rows, vec![3, 4, 5]);
        assert!(skipped[0].1.contains("not a number"), "{skipped:?}");
        assert!(skipped[1].1.contains("off the globe"), "{skipped:?}");
    }

    #[test]
    fn offsets_and_times() {
        assert_eq!(parse_utc_offset("-05:00").unwrap(), -18_000);
        assert_eq!(parse_utc_offset("+0130").unwrap(), 5_400);
        assert_eq!(parse_utc_offset("-5").unwrap(), -18_000);
        assert!(parse_utc_offset("x").is_err());
        assert_eq!(parse_hms("25:01:02").unwrap(), 90_062);
        assert!(parse_hms("12:00").is_err());
    }

    #[test]
    fn args_accept_negative_offsets() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: GtfsArgs,
        }
        let cli = Cli::try_parse_from(["x", "--gtfs", "g", "--out", "o", "--utc-offset", "-04:00"])
            .unwrap();
        assert_eq!(cli.args.utc_offset, "-04:00");
        assert_eq!(cli.args.radius_m, BUS_STOP_RADIUS_M);
    }

    #[test]
    fn shape_cut_prefers_first_pass() {
        // A shape going east then coming back west along the same street.
        let shape: Vec<Point> = (0..20)
            .chain((0..20).rev())
            .map(|i| Point {
                lat: 0.0,
                lon: i as f64 * 0.001,
            })
            .collect();
        assert_eq!(nearest_ahead(&shape, 0, 0.0, 0.005), 5);
        assert_eq!(nearest_ahead(&shape, 20, 0.0, 0.005), 34);
    }

    #[test]
    fn converts_the_wmata_sample_if_present() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/wmata_bus_C53");
        if !dir.exists() {
            eprintln!("skipped: {} absent", dir.display());
            return;
        }
        let pings = read_realtime(&dir.join("vehicle_positions_2026-02-16.csv")).unwrap();
        let routes = convert(
            &dir.join("gtfs"),
            -18_000,
            BUS_STOP_RADIUS_M,
            None,
            Some(&pings),
        )
        .unwrap();
        assert!(routes.len() > 50);
        let r = &routes[0];
        assert!(r.stops.len() > 40);
        assert!(r.stops.iter().skip(1).all(|s| s.path.len() >= 2));
        let first = r.stops[0].planned_arrival_ms.unwrap();
        // The recording is 10:58-15:59 New York time on 2026-02-16: 15:58-20:59 UTC.
        assert!((1_771_200_000_000..1_771_300_000_000).contains(&first));
    }
}
