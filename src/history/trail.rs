//! A route's trail: where its driver went while the route was under way, for playback on the
//! dispatcher's map (table `trails`: `route 0x1 t_ms` to the position, 8 bytes: latitude and
//! longitude in 1e-7 degrees, little-endian), purged with the route's history.
//!
//! Points come from the fold (every stored fix of a driver whose route has started and not
//! finished, [`History::trail_fixes`]), thinned to one per 15 m or minute and buffered
//! ([`super::stores::TrailBuffer`]). A buffer is written in one transaction once it holds
//! 512 points, by [`History::flush`] (before every snapshot: the log is never cut past a
//! point not yet written, a restart folds those again) and when a route closes. Reads see the
//! buffer too, so a live route's playback reaches its newest point.

use milepost_proto::route::RouteId;
use milepost_proto::Fix;

use crate::history::stores::{trail_key, TrailPoint, SEP, TRAILS};
#[cfg(doc)]
use crate::history::stores::{MAX_GAP_MS, MIN_STEP_M};
use crate::history::{History, HistoryError, HistoryWrite};

/// Most points a playback answer holds (the trail is thinned further beyond).
pub const MAX_ANSWER: usize = 5_000;

impl History {
    /// Stored fixes of `route`'s driver (one batch): each kept in the trail unless it is
    /// within [`MIN_STEP_M`] and [`MAX_GAP_MS`] of the last point kept.
    pub fn trail_fixes<'a>(&self, route: &RouteId, fixes: impl IntoIterator<Item = &'a Fix>) {
        let full: Vec<Vec<TrailPoint>> = {
            let mut b = self.trail.lock().unwrap_or_else(|p| p.into_inner());
            fixes.into_iter().filter_map(|f| b.push(route, f)).collect()
        };
        for points in full {
            self.submit(HistoryWrite::Trail(points));
        }
    }

    /// Hands the buffered points to the writer (a route closes, a snapshot is due).
    pub(crate) fn submit_trail(&self) {
        let points = self.trail.lock().unwrap_or_else(|p| p.into_inner()).take();
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
                t.insert(trail_key(&p.route.0, p.t_ms).as_str(), v.as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// `route`'s trail from `from_ms` to `to_ms` (fix times: one run of the route, since an
    /// id may be used again), oldest first: `(t_ms, lat, lon)`, at most [`MAX_ANSWER`] points
    /// (evenly thinned beyond, the first and last kept).
    pub fn trail(
        &self,
        route: &RouteId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(i64, f64, f64)>, HistoryError> {
        let mut out: Vec<(i64, i32, i32)> = Vec::new();
        {
            let tx = self.db().begin_read()?;
            let t = tx.open_table(TRAILS)?;
            let from = trail_key(&route.0, from_ms);
            let to = trail_key(&route.0, to_ms);
            let prefix = format!("{}{SEP}", route.0);
            for e in t.range(from.as_str()..=to.as_str())? {
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
                b.pending_of(route)
                    .filter(|p| (from_ms..=to_ms).contains(&p.0)),
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
