//! A route's trail: where its driver went while the route was under way, for playback on the
//! dispatcher's map (table `trails`: `route 0x1 t_ms` to the position, 8 bytes: latitude and
//! longitude in 1e-7 degrees, little-endian), purged with the route's history.
//!
//! Points come from the fold (every stored fix of a driver whose route has started and not
//! finished, [`History::trail_fix`]), thinned to one per [`MIN_STEP_M`] metres or
//! [`MAX_GAP_MS`], and buffered. A buffer is written in one transaction once it holds
//! [`BATCH`] points, by [`History::flush`] (before every snapshot: the log is never cut past a
//! point not yet written, a restart folds those again) and when a route closes. Reads see the
//! buffer too, so a live route's playback reaches its newest point.

use std::collections::HashMap;

use milepost_proto::route::RouteId;
use milepost_proto::Fix;
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::history::{History, HistoryError, HistoryWrite, SEP};

/// `route 0x1 t_ms` (20 digits) to latitude and longitude, i32 LE each, 1e-7 degrees.
pub(crate) const TRAILS: TableDefinition<&str, &[u8]> = TableDefinition::new("trails");

/// A point is kept once the driver is this far from the last one kept, metres...
pub const MIN_STEP_M: f64 = 15.0;
/// ...or this long after it (a driver waiting at a stop still shows as there), ms.
pub const MAX_GAP_MS: i64 = 60_000;
/// Points buffered before they are written.
pub const BATCH: usize = 512;
/// Most points a playback answer holds (the trail is thinned further beyond).
pub const MAX_ANSWER: usize = 5_000;
/// Routes whose last kept point is remembered for thinning; beyond, the memory starts over.
const MAX_ROUTES: usize = 100_000;

/// One point of a trail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrailPoint {
    /// The route.
    pub route: RouteId,
    /// The fix's time, UTC ms.
    pub t_ms: i64,
    /// Latitude, 1e-7 degrees.
    pub lat_e7: i32,
    /// Longitude, 1e-7 degrees.
    pub lon_e7: i32,
}

/// Points not written yet, and the last point kept per route.
#[derive(Debug, Default)]
pub struct TrailBuffer {
    pending: Vec<TrailPoint>,
    last: HashMap<RouteId, (i64, i32, i32)>,
}

fn key(route: &str, t_ms: i64) -> String {
    format!("{route}{SEP}{:020}", t_ms.max(0))
}

/// Metres between two points in 1e-7 degrees (equirectangular: points are metres apart).
fn step_m(a: (i32, i32), b: (i32, i32)) -> f64 {
    let lat = f64::from(a.0) * 1e-7;
    let dy = f64::from(b.0 - a.0) * 1e-7 * 110_574.0;
    let dx = f64::from(b.1 - a.1) * 1e-7 * 111_320.0 * lat.to_radians().cos();
    dx.hypot(dy)
}

impl History {
    /// A stored fix of `route`'s driver: kept in the trail unless it is within
    /// [`MIN_STEP_M`] and [`MAX_GAP_MS`] of the last point kept.
    pub fn trail_fix(&self, route: &RouteId, fix: &Fix) {
        let full = {
            let mut b = self.trail.lock().unwrap_or_else(|p| p.into_inner());
            let here = (fix.lat_e7, fix.lon_e7);
            if let Some(&(t, lat, lon)) = b.last.get(route) {
                let near = step_m((lat, lon), here) < MIN_STEP_M;
                if fix.t_ms >= t && near && fix.t_ms - t < MAX_GAP_MS {
                    return;
                }
            }
            if b.last.len() >= MAX_ROUTES {
                b.last.clear();
            }
            b.last.insert(route.clone(), (fix.t_ms, here.0, here.1));
            b.pending.push(TrailPoint {
                route: route.clone(),
                t_ms: fix.t_ms,
                lat_e7: here.0,
                lon_e7: here.1,
            });
            (b.pending.len() >= BATCH).then(|| std::mem::take(&mut b.pending))
        };
        if let Some(points) = full {
            self.submit(HistoryWrite::Trail(points));
        }
    }

    /// Hands the buffered points to the writer (a route closes, a snapshot is due).
    pub(crate) fn submit_trail(&self) {
        let points = {
            let mut b = self.trail.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut b.pending)
        };
        if !points.is_empty() {
            self.submit(HistoryWrite::Trail(points));
        }
    }

    /// Writes `points` in one transaction.
    pub(crate) fn record_trail(&self, points: &[TrailPoint]) -> Result<(), HistoryError> {
        let tx = self.db().begin_write()?;
        {
            let mut t = tx.open_table(TRAILS)?;
            let mut v = [0u8; 8];
            for p in points {
                v[..4].copy_from_slice(&p.lat_e7.to_le_bytes());
                v[4..].copy_from_slice(&p.lon_e7.to_le_bytes());
                t.insert(key(&p.route.0, p.t_ms).as_str(), v.as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// `route`'s trail, oldest first: `(t_ms, lat, lon)`, at most [`MAX_ANSWER`] points
    /// (evenly thinned beyond, the first and last kept).
    pub fn trail(&self, route: &RouteId) -> Result<Vec<(i64, f64, f64)>, HistoryError> {
        let mut out: Vec<(i64, i32, i32)> = Vec::new();
        {
            let tx = self.db().begin_read()?;
            let t = tx.open_table(TRAILS)?;
            let from = key(&route.0, 0);
            let prefix = format!("{}{SEP}", route.0);
            for e in t.range(from.as_str()..)? {
                let (k, v) = e?;
                let Some(ts) = k.value().strip_prefix(&prefix) else {
                    break;
                };
                let (Ok(t_ms), Ok(b)) = (ts.parse::<i64>(), <[u8; 8]>::try_from(v.value())) else {
                    continue;
                };
                let lat = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                let lon = i32::from_le_bytes([b[4], b[5], b[6], b[7]]);
                out.push((t_ms, lat, lon));
            }
        }
        {
            let b = self.trail.lock().unwrap_or_else(|p| p.into_inner());
            out.extend(
                b.pending
                    .iter()
                    .filter(|p| &p.route == route)
                    .map(|p| (p.t_ms, p.lat_e7, p.lon_e7)),
            );
        }
        out.sort_by_key(|p| p.0);
        out.dedup_by_key(|p| p.0);
        if out.len() > MAX_ANSWER {
            let n = out.len();
            out = (0..MAX_ANSWER)
                .map(|i| out[i * (n - 1) / (MAX_ANSWER - 1)])
                .collect();
        }
        Ok(out
            .into_iter()
            .map(|(t, lat, lon)| (t, f64::from(lat) * 1e-7, f64::from(lon) * 1e-7))
            .collect())
    }
}

/// Removes route `id`'s trail (its history is purged).
pub(crate) fn purge(tx: &WriteTransaction, id: &str) -> Result<(), HistoryError> {
    let mut t = tx.open_table(TRAILS)?;
    let prefix = format!("{id}{SEP}");
    let keys: Vec<String> = t
        .range(key(id, 0).as_str()..)?
        .map(|e| e.map(|(k, _)| k.value().to_owned()))
        .take_while(|k| k.as_ref().map_or(true, |k| k.starts_with(&prefix)))
        .collect::<Result<_, _>>()?;
    for k in keys {
        t.remove(k.as_str())?;
    }
    Ok(())
}
