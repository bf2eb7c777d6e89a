//! What every trace reader produces and shares: a [`Trace`] of [`TracePoint`]s, where a bad
//! point was ([`Location`]), what went wrong ([`TraceError`]), how strict a read is
//! ([`ReadOptions`]), and [`shift`] to move a trace in time and space.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// One recorded GPS fix.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TracePoint {
    /// Fix time, UTC milliseconds since the Unix epoch.
    pub t_ms: i64,
    /// Latitude in degrees, WGS84, in `[-90, 90]`.
    pub lat: f64,
    /// Longitude in degrees, WGS84, in `[-180, 180]`.
    pub lon: f64,
    /// Horizontal accuracy in metres, when recorded (for GPX derived from `<hdop>`).
    pub accuracy_m: Option<f32>,
    /// Ground speed in metres per second, when recorded.
    pub speed_mps: Option<f32>,
    /// Heading (course over ground) in degrees clockwise from true north, when recorded.
    pub heading_deg: Option<f32>,
    /// Altitude in metres, when recorded.
    pub altitude_m: Option<f32>,
}

impl TracePoint {
    /// A point with a time and position and no optional fields.
    pub fn new(t_ms: i64, lat: f64, lon: f64) -> Self {
        TracePoint {
            t_ms,
            lat,
            lon,
            accuracy_m: None,
            speed_mps: None,
            heading_deg: None,
            altitude_m: None,
        }
    }
}

/// A recorded trace: an id and its points sorted by time.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// Trace id, see the module docs for how readers name traces.
    pub id: String,
    /// Points sorted by `t_ms` (stable: equal times keep their recorded order).
    pub points: Vec<TracePoint>,
}

impl Trace {
    /// A trace from points in any order; they are stably sorted by time.
    pub fn new(id: impl Into<String>, mut points: Vec<TracePoint>) -> Self {
        points.sort_by_key(|p| p.t_ms);
        Trace {
            id: id.into(),
            points,
        }
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// True when the trace has no points (readers never return such a trace).
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Time of the first point, UTC ms.
    pub fn start_ms(&self) -> Option<i64> {
        self.points.first().map(|p| p.t_ms)
    }

    /// Time of the last point, UTC ms.
    pub fn end_ms(&self) -> Option<i64> {
        self.points.last().map(|p| p.t_ms)
    }

    /// Time from the first to the last point in ms (0 for fewer than two points).
    pub fn duration_ms(&self) -> i64 {
        match (self.start_ms(), self.end_ms()) {
            (Some(a), Some(b)) => b - a,
            _ => 0,
        }
    }
}

/// A copy of `trace` moved by `dt_ms` milliseconds in time and by `dlat`/`dlon` degrees in space.
///
/// Used to replay N drivers from fewer recordings: e.g. `shift(&t, now_ms - t.start_ms().unwrap(),
/// 0.001 * k as f64, 0.0)`. Latitudes are clamped to `[-90, 90]`, longitudes wrapped into
/// `[-180, 180)`, times saturate at the `i64` range. Degrees are not metres: 0.001 degrees of
/// latitude is about 111 m, 0.001 degrees of longitude is about `111 * cos(lat)` m. The id is kept;
/// rename the copy if ids must be unique. Speed, heading and accuracy are unchanged.
pub fn shift(trace: &Trace, dt_ms: i64, dlat: f64, dlon: f64) -> Trace {
    let points = trace
        .points
        .iter()
        .map(|p| TracePoint {
            t_ms: p.t_ms.saturating_add(dt_ms),
            lat: (p.lat + dlat).clamp(-90.0, 90.0),
            lon: wrap_lon(p.lon + dlon),
            ..*p
        })
        .collect();
    Trace {
        id: trace.id.clone(),
        points,
    }
}

fn wrap_lon(lon: f64) -> f64 {
    if (-180.0..180.0).contains(&lon) {
        lon
    } else {
        (lon + 180.0).rem_euclid(360.0) - 180.0
    }
}

/// Where in the input an error is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A 1-based line number (CSV record start, GPX point start tag).
    Line(u64),
    /// A JSON path such as `features[3].geometry.coordinates[17]`.
    Json(String),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(n) => write!(f, "line {n}"),
            Location::Json(p) => f.write_str(p),
        }
    }
}

/// Why a trace could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// Reading the input failed (including a corrupt gzip stream).
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// An error while reading the file at `path` (added by [`read_traces`]).
    #[error("{}: {error}", path.display())]
    File {
        /// The file being read.
        path: PathBuf,
        /// What went wrong.
        error: Box<TraceError>,
    },
    /// Malformed XML, or not a GPX document.
    #[error("GPX: XML error at line {line}: {msg}")]
    Xml {
        /// 1-based line of the error.
        line: u64,
        /// What is wrong.
        msg: String,
    },
    /// Malformed CSV (e.g. invalid UTF-8).
    #[error("CSV error at line {line}: {msg}")]
    Csv {
        /// 1-based line of the error.
        line: u64,
        /// What is wrong.
        msg: String,
    },
    /// Malformed JSON.
    #[error("JSON error at line {line}, column {column}: {msg}")]
    Json {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What is wrong.
        msg: String,
    },
    /// Valid JSON that is not the GeoJSON this reader understands.
    #[error("GeoJSON: {at}: {msg}")]
    GeoJson {
        /// JSON path of the offending value.
        at: Location,
        /// What is wrong.
        msg: String,
    },
    /// A point has no timestamp; a replay needs one for every point.
    #[error("{at}: {what} (a replay needs a timestamp for every point; skip such points with ReadOptions::skip_untimed)")]
    MissingTime {
        /// Where the point is.
        at: Location,
        /// Which point and which time field is missing.
        what: String,
    },
    /// A latitude or longitude is missing, not a number or out of range.
    #[error("{at}: bad coordinate: {msg}")]
    BadCoordinate {
        /// Where the point is.
        at: Location,
        /// What is wrong.
        msg: String,
    },
    /// A timestamp that does not parse in the expected format.
    #[error("{at}: bad time {value:?}: {msg}")]
    BadTime {
        /// Where the point is.
        at: Location,
        /// The text found.
        value: String,
        /// The expected format.
        msg: String,
    },
    /// An optional field (speed, heading, accuracy, altitude) that is present but not a finite
    /// number.
    #[error("{at}: bad {field} value {value:?}: not a finite number")]
    BadValue {
        /// Where the point is.
        at: Location,
        /// Which field.
        field: &'static str,
        /// The text found.
        value: String,
    },
    /// The input holds no trace point (empty file, header only, only waypoints, every point
    /// skipped...).
    #[error("no trace points found")]
    Empty,
    /// The format could not be determined (unknown extension, unrecognisable CSV header, bad
    /// `--format` string).
    #[error("unknown trace format: {0}")]
    UnknownFormat(String),
    /// A CSV mapping that cannot be used: bad mapping string, column name not in the header,
    /// column names without a header.
    #[error("CSV mapping: {0}")]
    Mapping(String),
}

/// How strictly readers treat bad points. The default is strict: fail on the first one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Skip points without a timestamp (a GPX `<trkpt>` without `<time>`, an empty CSV time cell,
    /// a GeoJSON line without `coordTimes`) instead of failing with [`TraceError::MissingTime`].
    pub skip_untimed: bool,
    /// Skip points with a bad coordinate, time or value instead of failing with
    /// [`TraceError::BadCoordinate`], [`TraceError::BadTime`] or [`TraceError::BadValue`].
    /// Syntax errors (XML, CSV, JSON) always fail.
    pub skip_invalid: bool,
}

impl ReadOptions {
    /// Fail on the first untimed or invalid point (the default).
    pub fn strict() -> Self {
        Self::default()
    }

    /// Skip untimed and invalid points, logging one warning per read with the counts.
    pub fn lenient() -> Self {
        ReadOptions {
            skip_untimed: true,
            skip_invalid: true,
        }
    }
}
