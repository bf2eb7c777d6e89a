//! Route plans as the gateway accepts them: validation with typed errors, and JSON loading.
//!
//! The wire types (`Route`, `Stop` ...) live in `milepost-proto`; this module decides which
//! of them the core will take. Everything the core later assumes without checking (finite
//! coordinates, unique ids, a positive geofence, windows that end after they start) is checked
//! here once, so a bad route file is refused with a message naming the offending stop instead of
//! producing nonsense ETAs.

use std::collections::HashSet;

use milepost_proto::route::{Point, Route, RouteId, StopId, TrackingNumber};
use milepost_proto::DriverId;

/// Why a route (or an operation on one) was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RouteError {
    /// The route file is not valid JSON for a [`Route`].
    #[error("invalid route JSON: {0}")]
    Json(String),
    /// The route, its depot or its driver has an empty id.
    #[error("route {0:?}: empty route, depot or driver id")]
    EmptyId(RouteId),
    /// The route has no stops.
    #[error("route {0}: no stops")]
    Empty(RouteId),
    /// Two stops share an id.
    #[error("duplicate stop id {0}")]
    DuplicateStop(StopId),
    /// A tracking number appears twice in the route.
    #[error("duplicate tracking number {0}")]
    DuplicateTracking(TrackingNumber),
    /// A stop has no parcels.
    #[error("stop {0}: no parcels")]
    NoParcels(StopId),
    /// A coordinate is out of range or not finite.
    #[error("{what}: bad coordinates ({lat}, {lon})")]
    BadCoordinates {
        /// Which point ("stop S1", "path of stop S1", "route start").
        what: String,
        /// Latitude given.
        lat: f64,
        /// Longitude given.
        lon: f64,
    },
    /// A time is outside years 1970..=9999.
    #[error("{0}: time out of range")]
    BadTime(String),
    /// A geofence radius is not a positive finite number.
    #[error("stop {0}: geofence radius must be > 0")]
    BadRadius(StopId),
    /// A time window ends before it starts.
    #[error("stop {0}: time window ends before it starts")]
    BadWindow(StopId),
    /// A stop requires an OTP but one of its parcels has no code.
    #[error("stop {0}: OTP required but parcel {1} has no code")]
    MissingOtp(StopId, TrackingNumber),
    /// The route is not known to the core.
    #[error("unknown route {0}")]
    UnknownRoute(RouteId),
    /// A tracking number is already on another, unfinished route.
    #[error("tracking number {0} is already on route {1}")]
    TrackingOnOtherRoute(TrackingNumber, RouteId),
    /// The driver already drives another unfinished route.
    #[error("driver {0} already drives unfinished route {1}")]
    DriverBusy(DriverId, RouteId),
    /// A new stop order is not a permutation of the route's stops.
    #[error("new stop order must list each stop of route {0} exactly once")]
    BadSequence(RouteId),
}

/// Loading a [`Route`] from JSON. A trait because [`Route`] lives in `milepost-proto`, which
/// has no JSON dependency; bring it into scope and call `Route::from_json(text)`.
pub trait RouteJson: Sized {
    /// Parses and validates a route file (see `docs/ROUTES.md`).
    ///
    /// # Errors
    /// [`RouteError::Json`] for malformed JSON, or the first validation error.
    fn from_json(text: &str) -> Result<Self, RouteError>;
    /// Pretty JSON, in the format [`RouteJson::from_json`] reads.
    fn to_json(&self) -> String;
}

impl RouteJson for Route {
    fn from_json(text: &str) -> Result<Self, RouteError> {
        let route: Route =
            serde_json::from_str(text).map_err(|e| RouteError::Json(e.to_string()))?;
        validate(&route)?;
        Ok(route)
    }

    fn to_json(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// Moves a route in time by `offset_ms`: its planned start, every stop's planned arrival and
/// promised window. A recorded day replays today when its route and its trace are shifted by
/// the same offset.
pub fn shift_route(route: &mut Route, offset_ms: i64) {
    route.planned_start_ms = route.planned_start_ms.saturating_add(offset_ms);
    for s in &mut route.stops {
        if let Some(p) = &mut s.planned_arrival_ms {
            *p = p.saturating_add(offset_ms);
        }
        if let Some(w) = &mut s.window {
            w.start_ms = w.start_ms.saturating_add(offset_ms);
            w.end_ms = w.end_ms.saturating_add(offset_ms);
        }
    }
}

/// Takes every parcel's one-time code out of a route that leaves the server (to a driver's
/// app or a dispatcher's tool): the code proves that the recipient was there, so nobody but
/// the recipient may be shown it.
pub fn without_codes(mut route: Route) -> Route {
    for p in route.stops.iter_mut().flat_map(|s| &mut s.parcels) {
        p.otp = None;
    }
    route
}

/// Gives each parcel of `route` without a one-time code the code the same parcel has in
/// `live` (the route being replaced), so that a plan read without its codes
/// ([`without_codes`]) can be put back in place of the live one.
pub fn keep_codes(route: &mut Route, live: &Route) {
    let codes: std::collections::HashMap<&TrackingNumber, &String> = live
        .stops
        .iter()
        .flat_map(|s| &s.parcels)
        .filter_map(|p| Some((&p.tracking, p.otp.as_ref()?)))
        .collect();
    for p in route.stops.iter_mut().flat_map(|s| &mut s.parcels) {
        if p.otp.is_none() {
            p.otp = codes.get(&p.tracking).map(|c| (*c).clone());
        }
    }
}

/// Checks everything the core relies on.
///
/// # Errors
/// The first problem found, naming the stop or parcel.
pub fn validate(route: &Route) -> Result<(), RouteError> {
    if route.id.0.is_empty() || route.depot.0.is_empty() || route.driver.0.is_empty() {
        return Err(RouteError::EmptyId(route.id.clone()));
    }
    if route.stops.is_empty() {
        return Err(RouteError::Empty(route.id.clone()));
    }
    if let Some(p) = route.start {
        check_point("route start", p.lat, p.lon)?;
    }
    check_time("route planned start", route.planned_start_ms)?;
    let mut stop_ids = HashSet::with_capacity(route.stops.len());
    let mut trackings = HashSet::new();
    for stop in &route.stops {
        if stop.id.0.is_empty() || !stop_ids.insert(&stop.id) {
            return Err(RouteError::DuplicateStop(stop.id.clone()));
        }
        check_point(&format!("stop {}", stop.id), stop.lat, stop.lon)?;
        if let Some(r) = stop.radius_m {
            if !(r.is_finite() && r > 0.0) {
                return Err(RouteError::BadRadius(stop.id.clone()));
            }
        }
        if let Some(t) = stop.planned_arrival_ms {
            check_time(&format!("stop {} planned arrival", stop.id), t)?;
        }
        if let Some(w) = stop.window {
            check_time(&format!("stop {} window", stop.id), w.start_ms)?;
            check_time(&format!("stop {} window", stop.id), w.end_ms)?;
            if w.end_ms < w.start_ms {
                return Err(RouteError::BadWindow(stop.id.clone()));
            }
        }
        if stop.parcels.is_empty() {
            return Err(RouteError::NoParcels(stop.id.clone()));
        }
        for parcel in &stop.parcels {
            if parcel.tracking.0.is_empty() || !trackings.insert(&parcel.tracking) {
                return Err(RouteError::DuplicateTracking(parcel.tracking.clone()));
            }
            if stop.otp_required && parcel.otp.as_deref().is_none_or(str::is_empty) {
                return Err(RouteError::MissingOtp(
                    stop.id.clone(),
                    parcel.tracking.clone(),
                ));
            }
        }
        let what = format!("path of stop {}", stop.id);
        for &Point { lat, lon } in &stop.path {
            check_point(&what, lat, lon)?;
        }
    }
    Ok(())
}

/// Latest accepted time: 9999-12-31T23:59:59.999Z. Bounding times keeps every sum of a time
/// and a duration in the core far from overflow.
const MAX_TIME_MS: i64 = 253_402_300_799_999;

/// Checks that a time lies in years 1970..=9999.
fn check_time(what: &str, t_ms: i64) -> Result<(), RouteError> {
    if (0..=MAX_TIME_MS).contains(&t_ms) {
        Ok(())
    } else {
        Err(RouteError::BadTime(what.to_owned()))
    }
}

/// Checks that (lat, lon) is a finite point on Earth.
fn check_point(what: &str, lat: f64, lon: f64) -> Result<(), RouteError> {
    if lat.is_finite() && lon.is_finite() && lat.abs() <= 90.0 && lon.abs() <= 180.0 {
        Ok(())
    } else {
        Err(RouteError::BadCoordinates {
            what: what.to_owned(),
            lat,
            lon,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../examples/route.json");

    #[test]
    fn a_shifted_route_keeps_its_plan_against_itself() {
        let r = Route::from_json(EXAMPLE).unwrap();
        let mut moved = r.clone();
        let day = 86_400_000;
        shift_route(&mut moved, 292 * day);
        assert_eq!(moved.planned_start_ms, r.planned_start_ms + 292 * day);
        for (a, b) in r.stops.iter().zip(&moved.stops) {
            assert_eq!(
                b.window.map(|w| w.start_ms - moved.planned_start_ms),
                a.window.map(|w| w.start_ms - r.planned_start_ms)
            );
            assert_eq!(
                b.window.map(|w| w.end_ms - w.start_ms),
                a.window.map(|w| w.end_ms - w.start_ms)
            );
            assert_eq!(
                b.planned_arrival_ms.map(|p| p - moved.planned_start_ms),
                a.planned_arrival_ms.map(|p| p - r.planned_start_ms)
            );
        }
        validate(&moved).unwrap();
    }

    #[test]
    fn example_file_loads() {
        let r = Route::from_json(EXAMPLE).unwrap();
        assert!(r.stops.len() >= 3);
        let back = Route::from_json(&r.to_json()).unwrap();
        assert_eq!(back, r);
    }

    fn base() -> Route {
        Route::from_json(EXAMPLE).unwrap()
    }

    #[test]
    fn refuses_bad_routes() {
        let mut r = base();
        r.stops.clear();
        assert!(matches!(validate(&r), Err(RouteError::Empty(_))));

        let mut r = base();
        r.stops[1].id = r.stops[0].id.clone();
        assert!(matches!(validate(&r), Err(RouteError::DuplicateStop(_))));

        let mut r = base();
        r.stops[1].parcels[0].tracking = r.stops[0].parcels[0].tracking.clone();
        assert!(matches!(
            validate(&r),
            Err(RouteError::DuplicateTracking(_))
        ));

        let mut r = base();
        r.stops[0].lat = 91.0;
        assert!(matches!(
            validate(&r),
            Err(RouteError::BadCoordinates { .. })
        ));

        let mut r = base();
        r.stops[0].lon = f64::NAN;
        assert!(matches!(
            validate(&r),
            Err(RouteError::BadCoordinates { .. })
        ));

        let mut r = base();
        r.stops[0].radius_m = Some(0.0);
        assert!(matches!(validate(&r), Err(RouteError::BadRadius(_))));

        let mut r = base();
        r.stops[0].window = Some(milepost_proto::route::TimeWindow {
            start_ms: 10,
            end_ms: 5,
        });
        assert!(matches!(validate(&r), Err(RouteError::BadWindow(_))));

        let mut r = base();
        r.stops[0].otp_required = true;
        r.stops[0].parcels[0].otp = None;
        assert!(matches!(validate(&r), Err(RouteError::MissingOtp(..))));

        let mut r = base();
        r.stops[0].path.push(Point {
            lat: 0.0,
            lon: 200.0,
        });
        assert!(matches!(
            validate(&r),
            Err(RouteError::BadCoordinates { .. })
        ));

        let mut r = base();
        r.stops[0].planned_arrival_ms = Some(-1);
        assert!(matches!(validate(&r), Err(RouteError::BadTime(_))));

        assert!(matches!(Route::from_json("{"), Err(RouteError::Json(_))));
    }
}
