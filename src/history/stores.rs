//! What the console's tables beside a route's history share with the history module, with no
//! dependency on it (it uses them): their definitions and keys, the trail's buffer and
//! thinning, and the purge of a route's rows. The reads and writes are `History` methods, in
//! [`super::places`] (stops' addresses) and [`super::trail`] (where a driver went).

use std::collections::HashMap;

use milepost_proto::route::RouteId;
use milepost_proto::Fix;
use redb::{ReadableTable, TableDefinition, WriteTransaction};

/// Separates the parts of an index key (never in an id: ids are checked printable).
pub const SEP: char = '\u{1}';

/// Route id to JSON `{stop id: address}`.
pub const ADDRESSES: TableDefinition<&str, &[u8]> = TableDefinition::new("addresses");

/// `route 0x1 t_ms` (20 digits) to latitude and longitude, i32 LE each, 1e-7 degrees.
pub const TRAILS: TableDefinition<&str, &[u8]> = TableDefinition::new("trails");

/// A point is kept once the driver is this far from the last one kept, metres...
pub const MIN_STEP_M: f64 = 15.0;
/// ...or this long after it (a driver waiting at a stop still shows as there), ms.
pub const MAX_GAP_MS: i64 = 60_000;
/// Points buffered before they are written.
pub const BATCH: usize = 512;
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

impl TrailBuffer {
    /// Keeps `fix` of `route` unless it is within [`MIN_STEP_M`] and [`MAX_GAP_MS`] of the last
    /// point kept; the buffer's points once it holds [`BATCH`].
    pub fn push(&mut self, route: &RouteId, fix: &Fix) -> Option<Vec<TrailPoint>> {
        let here = (fix.lat_e7, fix.lon_e7);
        if let Some(&(t, lat, lon)) = self.last.get(route) {
            let near = step_m((lat, lon), here) < MIN_STEP_M;
            if fix.t_ms >= t && near && fix.t_ms - t < MAX_GAP_MS {
                return None;
            }
        }
        if self.last.len() >= MAX_ROUTES {
            self.last.clear();
        }
        self.last.insert(route.clone(), (fix.t_ms, here.0, here.1));
        self.pending.push(TrailPoint {
            route: route.clone(),
            t_ms: fix.t_ms,
            lat_e7: here.0,
            lon_e7: here.1,
        });
        (self.pending.len() >= BATCH).then(|| self.take())
    }

    /// Every buffered point.
    pub fn take(&mut self) -> Vec<TrailPoint> {
        std::mem::take(&mut self.pending)
    }

    /// The buffered points of `route`: `(t_ms, lat_e7, lon_e7)`.
    pub fn pending_of(&self, route: &RouteId) -> impl Iterator<Item = (i64, i32, i32)> + '_ {
        let route = route.clone();
        self.pending
            .iter()
            .filter(move |p| p.route == route)
            .map(|p| (p.t_ms, p.lat_e7, p.lon_e7))
    }
}

/// A trail row's key.
pub fn trail_key(route: &str, t_ms: i64) -> String {
    format!("{route}{SEP}{:020}", t_ms.max(0))
}

/// Metres between two points in 1e-7 degrees (equirectangular: points are metres apart).
fn step_m(a: (i32, i32), b: (i32, i32)) -> f64 {
    let lat = f64::from(a.0) * 1e-7;
    let dy = f64::from(b.0 - a.0) * 1e-7 * 110_574.0;
    let dx = f64::from(b.1 - a.1) * 1e-7 * 111_320.0 * lat.to_radians().cos();
    dx.hypot(dy)
}

/// How far past a closing its trail is purged with it: fix times come from phones, whose
/// clocks may run ahead of the gateway's.
const CLOCK_SLACK_MS: i64 = 86_400_000;

/// Removes what route `id` left up to `upto_ms` (its closing being purged): its trail up to
/// then (and a day beyond, for phones' clocks), and its addresses if set before (a route id
/// used again since keeps the newer ones).
pub fn purge(tx: &WriteTransaction, id: &str, upto_ms: i64) -> Result<(), Box<redb::Error>> {
    fn boxed<E: Into<redb::Error>>(e: E) -> Box<redb::Error> {
        Box::new(e.into())
    }
    let mut a = tx.open_table(ADDRESSES).map_err(boxed)?;
    let set_ms = a.get(id).map_err(boxed)?.map(|v| {
        serde_json::from_slice::<serde_json::Value>(v.value())
            .ok()
            .and_then(|j| j["set_ms"].as_i64())
            .unwrap_or(i64::MIN)
    });
    if set_ms.is_some_and(|s| s <= upto_ms) {
        a.remove(id).map_err(boxed)?;
    }
    let mut t = tx.open_table(TRAILS).map_err(boxed)?;
    let keys: Vec<String> = t
        .range(
            trail_key(id, 0).as_str()
                ..=trail_key(id, upto_ms.saturating_add(CLOCK_SLACK_MS)).as_str(),
        )
        .map_err(boxed)?
        .map(|e| e.map(|(k, _)| k.value().to_owned()))
        .collect::<Result<_, _>>()
        .map_err(boxed)?;
    for k in keys {
        t.remove(k.as_str()).map_err(boxed)?;
    }
    Ok(())
}
