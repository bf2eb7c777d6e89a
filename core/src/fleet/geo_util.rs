//! Small geodesy helpers shared by the core: great-circle distance and a local equirectangular
//! projection. Distances here are for fleet work inside a city, where a spherical Earth is
//! accurate to well under a GPS fix's error.

/// Mean Earth radius in metres (IUGG).
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Metres per degree of latitude on the sphere.
pub const M_PER_DEG: f64 = EARTH_RADIUS_M * std::f64::consts::PI / 180.0;

/// Great-circle (haversine) distance in metres between two points given in degrees.
pub fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
}

/// A local equirectangular projection around a reference latitude: a *linear* map of
/// (lon, lat) to metres, so a latitude/longitude box maps to an exact box, and distances near
/// the reference latitude are accurate to a fraction of a percent over a city.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LocalProjection {
    /// Metres per degree of longitude at the reference latitude.
    m_per_deg_lon: f64,
    /// cos(reference latitude).
    cos_ref: f64,
}

impl LocalProjection {
    /// A projection centred on `ref_lat_deg`.
    pub fn new(ref_lat_deg: f64) -> Self {
        let cos_ref = ref_lat_deg.to_radians().cos().max(0.01);
        LocalProjection {
            m_per_deg_lon: M_PER_DEG * cos_ref,
            cos_ref,
        }
    }

    /// Projects (lat, lon) in degrees to (x, y) metres.
    pub fn project(&self, lat: f64, lon: f64) -> [f64; 2] {
        [lon * self.m_per_deg_lon, lat * M_PER_DEG]
    }

    /// The inverse of [`LocalProjection::project`]: (lat, lon) in degrees.
    pub fn unproject(&self, p: [f64; 2]) -> (f64, f64) {
        (p[1] / M_PER_DEG, p[0] / self.m_per_deg_lon)
    }

    /// The smallest ratio of true to projected distance for points whose latitude is at most
    /// `max_abs_lat_deg` away from the equator: a projected distance times this is a lower bound
    /// of the true distance (the x axis shrinks by cos(lat)/cos(ref)).
    pub fn min_scale(&self, max_abs_lat_deg: f64) -> f64 {
        let c = max_abs_lat_deg.min(89.9).to_radians().cos();
        (c / self.cos_ref).min(1.0) * 0.995
    }
}

/// Projection of point `p` onto segment `a`-`b` (all in projected metres): returns the fraction
/// along the segment in 0..=1 and the distance from `p` to that closest point.
pub fn project_on_segment(p: [f64; 2], a: [f64; 2], b: [f64; 2]) -> (f64, f64) {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let len2 = dx * dx + dy * dy;
    let t = if len2 <= f64::EPSILON {
        0.0
    } else {
        (((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2).clamp(0.0, 1.0)
    };
    let (cx, cy) = (a[0] + t * dx, a[1] + t * dy);
    (t, ((p[0] - cx).powi(2) + (p[1] - cy).powi(2)).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haversine_known_distance() {
        // Paris (Notre-Dame) to London (St Paul's): about 343.5 km.
        let d = haversine_m(48.853, 2.3499, 51.5138, -0.0984);
        assert!((d - 343_500.0).abs() < 1_500.0, "{d}");
        assert_eq!(haversine_m(10.0, 20.0, 10.0, 20.0), 0.0);
    }

    #[test]
    fn projection_matches_haversine_locally() {
        let p = LocalProjection::new(38.9);
        let a = p.project(38.9, -77.0);
        let b = p.project(38.91, -77.01);
        let proj = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
        let true_d = haversine_m(38.9, -77.0, 38.91, -77.01);
        assert!((proj - true_d).abs() / true_d < 0.002, "{proj} vs {true_d}");
        let (lat, lon) = p.unproject(b);
        assert!((lat - 38.91).abs() < 1e-9 && (lon + 77.01).abs() < 1e-9);
    }

    #[test]
    fn segment_projection() {
        let (t, d) = project_on_segment([5.0, 3.0], [0.0, 0.0], [10.0, 0.0]);
        assert!((t - 0.5).abs() < 1e-12 && (d - 3.0).abs() < 1e-12);
        let (t, _) = project_on_segment([-5.0, 0.0], [0.0, 0.0], [10.0, 0.0]);
        assert_eq!(t, 0.0);
    }
}
