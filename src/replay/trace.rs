//! Readers for recorded GPS traces: GPX, CSV (with GeoLife and GTFS-realtime presets) and GeoJSON.
//!
//! `milepost drive` replays one [`Trace`]; `milepost replay` cycles many of them, offsetting them in
//! time and space with [`shift`] to stand in for more drivers than there are recordings.
//!
//! # Entry points
//! - [`read_traces`] opens a file, gunzips it when it starts with the gzip magic bytes (whatever
//!   its name), and picks the format from the extension when none is given: `.gpx`, `.csv`/`.txt`
//!   (comma) or `.tsv` (tab) with the columns detected from the header ([`CsvMapping::detect`]),
//!   `.geojson`/`.json`; a trailing `.gz` is ignored for that choice.
//! - [`parse_gpx`], [`parse_csv`] and [`parse_geojson`] read one format from memory or a stream.
//! - The `*_with` variants take [`ReadOptions`] to skip untimed or invalid points instead of failing.
//!
//! # Policy
//! By default every reader is strict: the first point without a timestamp (a replay needs one) or
//! with an invalid coordinate, time or value fails the whole read with an error naming the line
//! (CSV, GPX) or the JSON path (GeoJSON). [`ReadOptions::lenient`] skips such points instead and logs
//! one `tracing` warning per read with the counts. Coordinates must be finite with
//! `-90 <= lat <= 90` and `-180 <= lon <= 180`; `(0, 0)` is accepted.
//!
//! Every returned [`Trace`] has at least one point, its points sorted by time (stable, so equal
//! timestamps keep file order). A read that yields no point at all is [`TraceError::Empty`].
//!
//! # Trace ids
//! The caller passes a base id (for [`read_traces`]: the file name without `.gz` and extension).
//! - CSV with an id column: `{base}/{value}` for every distinct value, in order of first
//!   appearance (an empty cell gives `{base}/_`); without an id column: `{base}`.
//! - GPX: one trace per non-empty `<trkseg>` (`{base}/trk{t}/seg{s}`) and per `<rte>`
//!   (`{base}/rte{r}`), numbered from 1 in document order; waypoints (`<wpt>`) are ignored.
//! - GeoJSON: one trace per LineString / MultiPoint feature (`{base}/f{i}`, `i` the 0-based index
//!   in `features`), per line of a MultiLineString (`{base}/f{i}/line{j}`), and one trace for all
//!   timed Point features together (`{base}/points`).
//! - GPX and GeoJSON: when the file yields exactly one trace, its id is just `{base}`.
//!
//! Nothing here streams: a file is read whole. A 200k-point CSV takes a few tens of megabytes.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime};
use flate2::read::MultiGzDecoder;
use quick_xml::events::{BytesStart, Event};
use serde_json::{Map, Value};

/// Metres of horizontal accuracy per unit of GPX `<hdop>`: `accuracy_m = hdop * 5`.
///
/// HDOP is unitless; multiplying it by a typical user-equivalent range error (about 5 m for a
/// consumer receiver) gives a rough 1-sigma horizontal accuracy. Good enough for replay, not for
/// surveying.
pub const HDOP_TO_METERS: f32 = 5.0;

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

/// Counts points skipped under [`ReadOptions`] and fails when the options say so.
struct Rejects<'a> {
    opts: &'a ReadOptions,
    untimed: usize,
    invalid: usize,
    first: Option<String>,
}

impl<'a> Rejects<'a> {
    fn new(opts: &'a ReadOptions) -> Self {
        Rejects {
            opts,
            untimed: 0,
            invalid: 0,
            first: None,
        }
    }

    /// `Ok` when the point may be skipped, else the error back.
    fn reject(&mut self, e: TraceError) -> Result<(), TraceError> {
        match e {
            TraceError::MissingTime { .. } if self.opts.skip_untimed => self.untimed += 1,
            TraceError::BadCoordinate { .. }
            | TraceError::BadTime { .. }
            | TraceError::BadValue { .. }
                if self.opts.skip_invalid =>
            {
                self.invalid += 1
            }
            e => return Err(e),
        }
        if self.first.is_none() {
            self.first = Some(e.to_string());
        }
        Ok(())
    }

    fn report(&self, id: &str) {
        if let Some(first) = &self.first {
            tracing::warn!(
                trace = id,
                untimed = self.untimed,
                invalid = self.invalid,
                "skipped trace points; first: {first}"
            );
        }
    }
}

/// Builds the traces from labelled point groups: drops empty groups, sorts, names them.
fn finish(
    base: &str,
    groups: Vec<(String, Vec<TracePoint>)>,
    collapse_single: bool,
) -> Result<Vec<Trace>, TraceError> {
    let groups: Vec<_> = groups.into_iter().filter(|(_, p)| !p.is_empty()).collect();
    if groups.is_empty() {
        return Err(TraceError::Empty);
    }
    let single = collapse_single && groups.len() == 1;
    Ok(groups
        .into_iter()
        .map(|(label, points)| {
            let id = if single {
                base.to_owned()
            } else {
                format!("{base}/{label}")
            };
            Trace::new(id, points)
        })
        .collect())
}

fn check_coord(lat: f64, lon: f64) -> Result<(), String> {
    if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
        return Err(format!("lat {lat} is not in [-90, 90]"));
    }
    if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
        return Err(format!("lon {lon} is not in [-180, 180]"));
    }
    Ok(())
}

/// True for cells that mean "no value": empty, `NA`, `NaN`, `null`, `None`.
fn is_blank(s: &str) -> bool {
    s.is_empty()
        || ["na", "nan", "null", "none"]
            .iter()
            .any(|b| s.eq_ignore_ascii_case(b))
}

/// An optional numeric field: blank is `None`, anything else must be a finite number.
fn opt_f32(
    s: &str,
    field: &'static str,
    at: impl FnOnce() -> Location,
) -> Result<Option<f32>, TraceError> {
    let s = s.trim();
    if is_blank(s) {
        return Ok(None);
    }
    match s.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(Some(v)),
        _ => Err(TraceError::BadValue {
            at: at(),
            field,
            value: s.to_owned(),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------------

/// How a CSV time column is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeFormat {
    /// Seconds since the Unix epoch, integer or decimal (`1771257489`, `1771257489.25`).
    UnixSeconds,
    /// Milliseconds since the Unix epoch, integer or decimal.
    UnixMillis,
    /// A date-time string: `YYYY-MM-DD HH:MM:SS[.fff]` or `YYYY-MM-DDTHH:MM:SS[.fff]` taken as
    /// UTC, or RFC 3339 with an offset (`2008-10-23T05:53:05Z`, `...+08:00`).
    DateTime,
    /// A chrono `strftime` pattern; taken as UTC unless the pattern has an offset (`%z`).
    Strftime(String),
    /// Numbers are Unix seconds below 1e11 and Unix milliseconds from 1e11 on (1e11 ms is
    /// 1973-03-03, 1e11 s is year 5138); anything else is parsed as [`TimeFormat::DateTime`].
    Auto,
}

impl FromStr for TimeFormat {
    type Err = TraceError;

    /// `unix`/`s`/`unix_s`, `ms`/`unix_ms`, `datetime`/`iso`/`rfc3339`, `auto`, or a pattern with
    /// a `%` (e.g. `%d/%m/%Y %H:%M`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Ok(match s.to_ascii_lowercase().as_str() {
            "unix" | "s" | "unix_s" | "unix-s" | "secs" | "seconds" => TimeFormat::UnixSeconds,
            "ms" | "unix_ms" | "unix-ms" | "millis" => TimeFormat::UnixMillis,
            "datetime" | "iso" | "rfc3339" | "iso8601" => TimeFormat::DateTime,
            "auto" => TimeFormat::Auto,
            _ if s.contains('%') => TimeFormat::Strftime(s.to_owned()),
            _ => {
                return Err(TraceError::Mapping(format!(
                    "unknown time format {s:?} (expected unix, ms, datetime, auto or a strftime pattern)"
                )))
            }
        })
    }
}

/// Parses a date-time as UTC ms: naive `YYYY-MM-DD[ T]HH:MM:SS[.f]` is UTC, else RFC 3339.
fn parse_datetime_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(n.and_utc().timestamp_millis());
        }
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Ok(d.timestamp_millis());
    }
    Err("expected \"YYYY-MM-DD HH:MM:SS\" (UTC) or an RFC 3339 date-time".to_owned())
}

/// Largest |ms| accepted (about year 285,000: far beyond anything real, safe for chrono).
const MAX_ABS_MS: f64 = 8.0e15;

fn parse_unix(s: &str, ms_per_unit: i64) -> Result<i64, String> {
    let what = if ms_per_unit == 1 {
        "Unix milliseconds"
    } else {
        "Unix seconds"
    };
    if let Ok(v) = s.parse::<i64>() {
        return v
            .checked_mul(ms_per_unit)
            .filter(|ms| (*ms as f64).abs() <= MAX_ABS_MS)
            .ok_or_else(|| format!("{what} out of range"));
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (v * ms_per_unit as f64).abs() <= MAX_ABS_MS => {
            Ok((v * ms_per_unit as f64).round() as i64)
        }
        Ok(_) => Err(format!("{what} out of range")),
        Err(_) => Err(format!("expected {what}")),
    }
}

/// Parses one time cell in `fmt` as UTC ms.
fn parse_time(s: &str, fmt: &TimeFormat) -> Result<i64, String> {
    let s = s.trim();
    match fmt {
        TimeFormat::UnixSeconds => parse_unix(s, 1000),
        TimeFormat::UnixMillis => parse_unix(s, 1),
        TimeFormat::DateTime => parse_datetime_ms(s),
        TimeFormat::Strftime(p) => NaiveDateTime::parse_from_str(s, p)
            .map(|n| n.and_utc().timestamp_millis())
            .or_else(|_| DateTime::parse_from_str(s, p).map(|d| d.timestamp_millis()))
            .map_err(|e| format!("expected {p:?}: {e}")),
        TimeFormat::Auto => match s.parse::<f64>() {
            Ok(v) if v.abs() >= 1e11 => parse_unix(s, 1),
            Ok(_) => parse_unix(s, 1000),
            Err(_) => parse_datetime_ms(s),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Formats and files
// ---------------------------------------------------------------------------------------------

/// A trace file format.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // made once per file: not worth boxing the mapping
pub enum TraceFormat {
    /// GPX 1.0 / 1.1 tracks and routes.
    Gpx,
    /// CSV with the given column mapping.
    Csv(CsvMapping),
    /// GeoJSON lines with per-coordinate times, or timed points.
    GeoJson,
}

impl FromStr for TraceFormat {
    type Err = TraceError;

    /// `gpx`, `geojson`/`json`, a CSV preset (`geolife`, `gtfs-rt`), or a CSV mapping, optionally
    /// prefixed with `csv:` (see [`CsvMapping::parse`]), e.g. `csv:lat=1,lon=2,time=3:unix,id=0`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        match t.to_ascii_lowercase().as_str() {
            "gpx" => return Ok(TraceFormat::Gpx),
            "geojson" | "json" => return Ok(TraceFormat::GeoJson),
            "csv" => {
                return Err(TraceError::UnknownFormat(
                    "\"csv\" needs a mapping such as csv:lat=0,lon=1,time=2:unix or a preset \
                     (geolife, gtfs-rt); or give no format to detect the columns from the header"
                        .to_owned(),
                ))
            }
            _ => {}
        }
        let spec = t.strip_prefix("csv:").unwrap_or(t);
        CsvMapping::parse(spec)
            .map(TraceFormat::Csv)
            .map_err(|e| match e {
                TraceError::Mapping(m) => TraceError::UnknownFormat(format!(
                    "{t:?} is not gpx, geojson, a CSV preset or a CSV mapping ({m})"
                )),
                e => e,
            })
    }
}

/// Reads every trace in the file at `path`, strictly (see [`read_traces_with`]).
pub fn read_traces(path: &Path, format: Option<TraceFormat>) -> Result<Vec<Trace>, TraceError> {
    read_traces_with(path, format, &ReadOptions::default())
}

/// Reads every trace in the file at `path`.
///
/// The file is gunzipped when it starts with the gzip magic bytes. With `format == None` the
/// format comes from the extension (a trailing `.gz` removed): `.gpx`; `.csv`, `.txt` (comma)
/// and `.tsv` (tab) with columns detected from the header by [`CsvMapping::detect`];
/// `.geojson`, `.json`. The base trace id is the file name without `.gz` and extension. Errors
/// are wrapped in [`TraceError::File`] naming the path.
pub fn read_traces_with(
    path: &Path,
    format: Option<TraceFormat>,
    opts: &ReadOptions,
) -> Result<Vec<Trace>, TraceError> {
    read_file(path, format, opts).map_err(|e| TraceError::File {
        path: path.to_owned(),
        error: Box::new(e),
    })
}

/// The file name without a trailing `.gz` (case-insensitive).
fn name_without_gz(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.to_ascii_lowercase().ends_with(".gz") {
        name[..name.len() - 3].to_owned()
    } else {
        name
    }
}

fn read_file(
    path: &Path,
    format: Option<TraceFormat>,
    opts: &ReadOptions,
) -> Result<Vec<Trace>, TraceError> {
    let name = name_without_gz(path);
    let inner = Path::new(&name);
    let base = inner
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "trace".to_owned());
    let ext = inner
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();

    // Decide the format before opening, so an unknown extension does not depend on the file.
    // `None` with a delimiter: CSV with the columns detected from the header.
    let (format, auto_delimiter) = match format {
        Some(f) => (Some(f), b','),
        None => match ext.as_str() {
            "gpx" => (Some(TraceFormat::Gpx), b','),
            "geojson" | "json" => (Some(TraceFormat::GeoJson), b','),
            "csv" | "txt" => (None, b','),
            "tsv" => (None, b'\t'),
            _ => {
                return Err(TraceError::UnknownFormat(format!(
                    "cannot tell the format of {:?} from its extension (expected .gpx, .csv, \
                     .txt, .tsv, .geojson or .json, optionally followed by .gz); give a format",
                    path.file_name().unwrap_or_default()
                )))
            }
        },
    };

    let mut file = BufReader::with_capacity(1 << 16, File::open(path)?);
    let gz = file.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    let mut input: Box<dyn BufRead> = if gz {
        Box::new(BufReader::with_capacity(1 << 16, MultiGzDecoder::new(file)))
    } else {
        Box::new(file)
    };
    match format {
        Some(TraceFormat::Gpx) => parse_gpx_with(input, &base, opts),
        Some(TraceFormat::Csv(m)) => parse_csv_with(input, &m, &base, opts),
        Some(TraceFormat::GeoJson) => {
            let mut s = String::new();
            input.read_to_string(&mut s)?;
            parse_geojson_with(&s, &base, opts)
        }
        None => parse_csv_auto(input, auto_delimiter, &base, opts),
    }
}

// ---------------------------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------------------------

/// A CSV column: a 0-based index, or a header name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    /// 0-based column index.
    Index(usize),
    /// Header name (exact match first, then trimmed and case-insensitive); needs a header row.
    Name(String),
}

impl Column {
    /// `"3"` is column index 3, anything else a header name.
    pub fn parse(s: &str) -> Column {
        let s = s.trim();
        match s.parse::<usize>() {
            Ok(i) => Column::Index(i),
            Err(_) => Column::Name(s.to_owned()),
        }
    }

    fn resolve(&self, headers: Option<&csv::StringRecord>) -> Result<usize, TraceError> {
        match (self, headers) {
            (Column::Index(i), _) => Ok(*i),
            (Column::Name(n), Some(h)) => h
                .iter()
                .position(|x| x == n)
                .or_else(|| {
                    h.iter()
                        .position(|x| x.trim().eq_ignore_ascii_case(n.trim()))
                })
                .ok_or_else(|| {
                    TraceError::Mapping(format!(
                        "no column {n:?} in the header ({})",
                        h.iter()
                            .map(|x| format!("{x:?}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }),
            (Column::Name(n), None) => Err(TraceError::Mapping(format!(
                "column {n:?} is named but the mapping says there is no header row; use an index"
            ))),
        }
    }
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Column::Index(i) => write!(f, "{i}"),
            Column::Name(n) => f.write_str(n),
        }
    }
}

/// Which CSV columns hold what.
///
/// Build one with [`CsvMapping::new`], a preset ([`CsvMapping::geolife`],
/// [`CsvMapping::gtfs_rt`]), [`CsvMapping::parse`] on a flag string, or [`CsvMapping::detect`] on a
/// header row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvMapping {
    /// Latitude column (degrees).
    pub lat: Column,
    /// Longitude column (degrees).
    pub lon: Column,
    /// Time column.
    pub time: Column,
    /// How the time column is written.
    pub time_format: TimeFormat,
    /// Column splitting rows into one trace per distinct value (driver, trip, user...).
    pub id: Option<Column>,
    /// Speed column, metres per second.
    pub speed: Option<Column>,
    /// Heading column, degrees clockwise from north.
    pub heading: Option<Column>,
    /// Horizontal accuracy column, metres.
    pub accuracy: Option<Column>,
    /// Altitude column, metres.
    pub altitude: Option<Column>,
    /// Whether the first row is a header (skipped; needed for named columns).
    pub has_header: bool,
    /// Field delimiter, `b','` by default.
    pub delimiter: u8,
}

impl CsvMapping {
    /// Just lat, lon and time; with a header row, comma-delimited.
    pub fn new(lat: Column, lon: Column, time: Column, time_format: TimeFormat) -> Self {
        CsvMapping {
            lat,
            lon,
            time,
            time_format,
            id: None,
            speed: None,
            heading: None,
            accuracy: None,
            altitude: None,
            has_header: true,
            delimiter: b',',
        }
    }

    /// The scikit-mobility GeoLife sample: header `lat,lng,datetime,uid`, times
    /// `2008-10-23 05:53:05` in UTC, one trace per `uid`.
    pub fn geolife() -> Self {
        CsvMapping {
            id: Some(Column::Name("uid".into())),
            ..CsvMapping::new(
                Column::Name("lat".into()),
                Column::Name("lng".into()),
                Column::Name("datetime".into()),
                TimeFormat::DateTime,
            )
        }
    }

    /// Recorded GTFS-realtime VehiclePositions flattened to CSV (as in the transittraj archives):
    /// one trace per `vehicle.trip.trip_id`, `vehicle.position.latitude` / `longitude`,
    /// `vehicle.timestamp` in Unix seconds, `vehicle.position.speed` (m/s) and
    /// `vehicle.position.bearing` (degrees, often empty).
    pub fn gtfs_rt() -> Self {
        CsvMapping {
            id: Some(Column::Name("vehicle.trip.trip_id".into())),
            speed: Some(Column::Name("vehicle.position.speed".into())),
            heading: Some(Column::Name("vehicle.position.bearing".into())),
            ..CsvMapping::new(
                Column::Name("vehicle.position.latitude".into()),
                Column::Name("vehicle.position.longitude".into()),
                Column::Name("vehicle.timestamp".into()),
                TimeFormat::UnixSeconds,
            )
        }
    }

    /// Parses a flag string: comma-separated `key=column` pairs, optionally after a preset name.
    ///
    /// - Presets (first item only): `geolife`, `gtfs-rt` (also `gtfs_rt`, `gtfsrt`); later items
    ///   override the preset.
    /// - Columns are 0-based indices (`lat=1`) or header names (`lat=vehicle.position.latitude`).
    ///   Keys: `lat`, `lon` (`lng`), `time` (`t`), `id`, `speed` (m/s), `heading` (`bearing`,
    ///   `course`), `accuracy` (`acc`), `alt` (`altitude`, `ele`). An empty value (`id=`) clears
    ///   an optional column.
    /// - `time=COLUMN:FORMAT` with FORMAT one of `unix` (seconds), `ms`, `datetime`, `auto` or a
    ///   strftime pattern (see [`TimeFormat`]); the column is split at the first `:`. Without a
    ///   format, a preset's stays, else [`TimeFormat::Auto`].
    /// - `header=yes|no` (default yes), `delim=tab|semicolon|pipe|comma|<one char>`.
    ///
    /// Without a preset, `lat`, `lon` and `time` are required. Examples:
    /// `lat=1,lon=2,time=3:unix,id=0,header=no`,
    /// `lat=vehicle.position.latitude,lon=vehicle.position.longitude,time=vehicle.timestamp:unix`,
    /// `gtfs-rt,id=vehicle.vehicle.id`.
    pub fn parse(spec: &str) -> Result<Self, TraceError> {
        let bad = TraceError::Mapping;
        let mut items = spec
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .peekable();
        let preset = match items.peek() {
            Some(first) if !first.contains('=') => {
                let p = match first.to_ascii_lowercase().as_str() {
                    "geolife" => CsvMapping::geolife(),
                    "gtfs-rt" | "gtfs_rt" | "gtfsrt" => CsvMapping::gtfs_rt(),
                    _ => {
                        return Err(bad(format!(
                            "unknown preset {first:?} (expected geolife or gtfs-rt)"
                        )))
                    }
                };
                items.next();
                Some(p)
            }
            _ => None,
        };
        let (mut lat, mut lon, mut time, mut time_format) = match &preset {
            Some(p) => (
                Some(p.lat.clone()),
                Some(p.lon.clone()),
                Some(p.time.clone()),
                Some(p.time_format.clone()),
            ),
            None => (None, None, None, None),
        };
        let mut m = preset.unwrap_or_else(|| {
            CsvMapping::new(
                Column::Index(0),
                Column::Index(0),
                Column::Index(0),
                TimeFormat::Auto,
            )
        });
        let opt = |v: &str| (!v.is_empty()).then(|| Column::parse(v));
        for item in items {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| bad(format!("{item:?} is not key=value")))?;
            let value = value.trim();
            match key.trim().to_ascii_lowercase().as_str() {
                "lat" | "latitude" => lat = opt(value),
                "lon" | "lng" | "long" | "longitude" => lon = opt(value),
                "time" | "t" | "timestamp" => {
                    let (col, fmt) = match value.split_once(':') {
                        Some((c, f)) => (c, Some(f.parse::<TimeFormat>()?)),
                        None => (value, None),
                    };
                    time = opt(col);
                    if fmt.is_some() {
                        time_format = fmt;
                    }
                }
                "id" => m.id = opt(value),
                "speed" => m.speed = opt(value),
                "heading" | "bearing" | "course" => m.heading = opt(value),
                "accuracy" | "acc" => m.accuracy = opt(value),
                "alt" | "altitude" | "ele" => m.altitude = opt(value),
                "header" => {
                    m.has_header = match value.to_ascii_lowercase().as_str() {
                        "yes" | "true" | "1" | "y" => true,
                        "no" | "false" | "0" | "n" => false,
                        _ => return Err(bad(format!("header={value:?}: expected yes or no"))),
                    }
                }
                "delim" | "delimiter" | "sep" => {
                    m.delimiter = match value.to_ascii_lowercase().as_str() {
                        "tab" | "\\t" => b'\t',
                        "comma" => b',',
                        "semicolon" => b';',
                        "pipe" => b'|',
                        v if v.len() == 1 => v.as_bytes()[0],
                        _ => return Err(bad(format!("delim={value:?}: expected tab, comma, semicolon, pipe or one character"))),
                    }
                }
                k => return Err(bad(format!("unknown key {k:?} (expected lat, lon, time, id, speed, heading, accuracy, alt, header, delim)"))),
            }
        }
        m.lat = lat.ok_or_else(|| bad("no lat column (lat=...)".into()))?;
        m.lon = lon.ok_or_else(|| bad("no lon column (lon=...)".into()))?;
        m.time = time.ok_or_else(|| bad("no time column (time=...)".into()))?;
        m.time_format = time_format.unwrap_or(TimeFormat::Auto);
        Ok(m)
    }

    /// Guesses the mapping from a header row; `None` without recognisable lat, lon and time.
    ///
    /// The GTFS-rt and GeoLife headers give their presets. Otherwise names are matched
    /// case-insensitively: lat `lat`/`latitude`; lon `lon`/`lng`/`long`/`longitude`; time
    /// `time`/`timestamp`/`datetime`/`date_time`/`ts`/`t` (format [`TimeFormat::Auto`]) or
    /// `t_ms`/`time_ms`/`timestamp_ms` (Unix ms); id `uid`/`user_id`/`trace_id`/`track_id`/
    /// `trip_id`/`driver_id`/`vehicle_id`/`device_id` (not a bare `id`, often a row number);
    /// speed `speed`/`speed_mps`; heading `heading`/`heading_deg`/`bearing`/`course`; accuracy
    /// `accuracy`/`accuracy_m`/`hacc`; altitude `alt`/`altitude`/`altitude_m`/`ele`/`elevation`.
    pub fn detect<S: AsRef<str>>(headers: &[S]) -> Option<Self> {
        let names: Vec<String> = headers
            .iter()
            .map(|h| h.as_ref().trim().to_ascii_lowercase())
            .collect();
        let has = |n: &str| names.iter().any(|h| h == n);
        if has("vehicle.position.latitude")
            && has("vehicle.position.longitude")
            && has("vehicle.timestamp")
        {
            let mut m = CsvMapping::gtfs_rt();
            m.id = m.id.filter(|_| has("vehicle.trip.trip_id"));
            m.speed = m.speed.filter(|_| has("vehicle.position.speed"));
            m.heading = m.heading.filter(|_| has("vehicle.position.bearing"));
            return Some(m);
        }
        let find = |cands: &[&str]| -> Option<Column> {
            cands
                .iter()
                .find_map(|c| {
                    headers
                        .iter()
                        .find(|h| h.as_ref().trim().eq_ignore_ascii_case(c))
                })
                .map(|h| Column::Name(h.as_ref().to_owned()))
        };
        let lat = find(&["lat", "latitude"])?;
        let lon = find(&["lon", "lng", "long", "longitude"])?;
        let (time, time_format) = match find(&["t_ms", "time_ms", "timestamp_ms"]) {
            Some(c) => (c, TimeFormat::UnixMillis),
            None => (
                find(&["time", "timestamp", "datetime", "date_time", "ts", "t"])?,
                TimeFormat::Auto,
            ),
        };
        Some(CsvMapping {
            id: find(&[
                "uid",
                "user_id",
                "trace_id",
                "track_id",
                "trip_id",
                "driver_id",
                "vehicle_id",
                "device_id",
            ]),
            speed: find(&["speed", "speed_mps"]),
            heading: find(&["heading", "heading_deg", "bearing", "course"]),
            accuracy: find(&["accuracy", "accuracy_m", "hacc"]),
            altitude: find(&["alt", "altitude", "altitude_m", "ele", "elevation"]),
            ..CsvMapping::new(lat, lon, time, time_format)
        })
    }
}

impl FromStr for CsvMapping {
    type Err = TraceError;

    /// See [`CsvMapping::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CsvMapping::parse(s)
    }
}

/// A mapping with every column resolved to an index.
struct CsvCols {
    lat: usize,
    lon: usize,
    time: usize,
    time_format: TimeFormat,
    id: Option<usize>,
    speed: Option<usize>,
    heading: Option<usize>,
    accuracy: Option<usize>,
    altitude: Option<usize>,
    names: [String; 3],
    has_header: bool,
}

impl CsvCols {
    fn new(m: &CsvMapping, headers: Option<&csv::StringRecord>) -> Result<Self, TraceError> {
        let opt = |c: &Option<Column>| c.as_ref().map(|c| c.resolve(headers)).transpose();
        Ok(CsvCols {
            lat: m.lat.resolve(headers)?,
            lon: m.lon.resolve(headers)?,
            time: m.time.resolve(headers)?,
            time_format: m.time_format.clone(),
            id: opt(&m.id)?,
            speed: opt(&m.speed)?,
            heading: opt(&m.heading)?,
            accuracy: opt(&m.accuracy)?,
            altitude: opt(&m.altitude)?,
            names: [m.lat.to_string(), m.lon.to_string(), m.time.to_string()],
            has_header: m.has_header,
        })
    }

    fn point(&self, rec: &csv::StringRecord, line: u64) -> Result<TracePoint, TraceError> {
        let at = || Location::Line(line);
        let coord = |idx: usize, name: &str, what: &str| -> Result<f64, TraceError> {
            let cell = rec.get(idx).map(str::trim);
            let msg = match cell {
                None => format!("no {what} column {name} (the row has {} fields)", rec.len()),
                Some("") => format!("empty {what} (column {name})"),
                Some(s) => match s.parse::<f64>() {
                    Ok(v) => return Ok(v),
                    Err(_) => format!("{what} {s:?} (column {name}) is not a number"),
                },
            };
            let hint = if line == 1 && !self.has_header {
                "; if line 1 is a header, set has_header (header=yes)"
            } else {
                ""
            };
            Err(TraceError::BadCoordinate {
                at: at(),
                msg: format!("{msg}{hint}"),
            })
        };
        let lat = coord(self.lat, &self.names[0], "lat")?;
        let lon = coord(self.lon, &self.names[1], "lon")?;
        check_coord(lat, lon).map_err(|msg| TraceError::BadCoordinate { at: at(), msg })?;
        let t_cell = rec.get(self.time).map(str::trim).unwrap_or("");
        if is_blank(t_cell) {
            return Err(TraceError::MissingTime {
                at: at(),
                what: format!("empty time cell (column {})", self.names[2]),
            });
        }
        let t_ms = parse_time(t_cell, &self.time_format).map_err(|msg| TraceError::BadTime {
            at: at(),
            value: t_cell.to_owned(),
            msg,
        })?;
        let field = |idx: Option<usize>, name: &'static str| -> Result<Option<f32>, TraceError> {
            match idx.and_then(|i| rec.get(i)) {
                Some(s) => opt_f32(s, name, at),
                None => Ok(None),
            }
        };
        Ok(TracePoint {
            t_ms,
            lat,
            lon,
            accuracy_m: field(self.accuracy, "accuracy")?,
            speed_mps: field(self.speed, "speed")?,
            heading_deg: field(self.heading, "heading")?,
            altitude_m: field(self.altitude, "altitude")?,
        })
    }
}

fn csv_reader<R: Read>(reader: R, delimiter: u8, has_header: bool) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(has_header)
        .flexible(true)
        .from_reader(reader)
}

fn csv_err(e: csv::Error) -> TraceError {
    let line = e.position().map_or(0, |p| p.line());
    let msg = e.to_string();
    match e.into_kind() {
        csv::ErrorKind::Io(e) => TraceError::Io(e),
        _ => TraceError::Csv { line, msg },
    }
}

/// Reads CSV traces strictly (see [`parse_csv_with`]).
pub fn parse_csv(
    reader: impl Read,
    mapping: &CsvMapping,
    id: &str,
) -> Result<Vec<Trace>, TraceError> {
    parse_csv_with(reader, mapping, id, &ReadOptions::default())
}

/// Reads CSV traces with `mapping`: one trace per distinct id-column value (`{id}/{value}`) or a
/// single trace `{id}` without an id column.
///
/// Strict by default: the first row with an unparsable or out-of-range lat/lon, an empty or
/// unparsable time, or a non-numeric optional value fails the read with an error naming its line
/// (1-based, counting the header). Rows whose cells are all empty are ignored. A file that is
/// empty or holds only a header is [`TraceError::Empty`].
pub fn parse_csv_with(
    reader: impl Read,
    mapping: &CsvMapping,
    id: &str,
    opts: &ReadOptions,
) -> Result<Vec<Trace>, TraceError> {
    let mut rdr = csv_reader(reader, mapping.delimiter, mapping.has_header);
    let headers = if mapping.has_header {
        let h = rdr.headers().map_err(csv_err)?.clone();
        if h.iter().all(str::is_empty) {
            return Err(TraceError::Empty);
        }
        Some(h)
    } else {
        None
    };
    let cols = CsvCols::new(mapping, headers.as_ref())?;
    read_csv_rows(rdr, &cols, id, opts)
}

/// Reads CSV traces with the mapping detected from the header ([`CsvMapping::detect`]).
fn parse_csv_auto(
    reader: impl Read,
    delimiter: u8,
    id: &str,
    opts: &ReadOptions,
) -> Result<Vec<Trace>, TraceError> {
    let mut rdr = csv_reader(reader, delimiter, true);
    let headers = rdr.headers().map_err(csv_err)?.clone();
    if headers.iter().all(str::is_empty) {
        return Err(TraceError::Empty);
    }
    let names: Vec<&str> = headers.iter().collect();
    let mut mapping = CsvMapping::detect(&names).ok_or_else(|| {
        TraceError::UnknownFormat(format!(
            "no lat/lon/time columns recognised in the CSV header ({}); give a mapping such as \
             lat=0,lon=1,time=2:unix",
            names.join(",")
        ))
    })?;
    mapping.delimiter = delimiter;
    let cols = CsvCols::new(&mapping, Some(&headers))?;
    read_csv_rows(rdr, &cols, id, opts)
}

fn read_csv_rows<R: Read>(
    mut rdr: csv::Reader<R>,
    cols: &CsvCols,
    id: &str,
    opts: &ReadOptions,
) -> Result<Vec<Trace>, TraceError> {
    let mut rejects = Rejects::new(opts);
    let mut groups: Vec<(String, Vec<TracePoint>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut rec = csv::StringRecord::new();
    while rdr.read_record(&mut rec).map_err(csv_err)? {
        if rec.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let line = rec.position().map_or(0, |p| p.line());
        let point = match cols.point(&rec, line) {
            Ok(p) => p,
            Err(e) => {
                rejects.reject(e)?;
                continue;
            }
        };
        let key = match cols.id {
            Some(i) => match rec.get(i).map(str::trim) {
                Some("") | None => "_",
                Some(v) => v,
            },
            None => "",
        };
        let g = match index.get(key) {
            Some(&g) => g,
            None => {
                let label = if cols.id.is_some() {
                    key.to_owned()
                } else {
                    String::new()
                };
                groups.push((label, Vec::new()));
                index.insert(key.to_owned(), groups.len() - 1);
                groups.len() - 1
            }
        };
        groups[g].1.push(point);
    }
    rejects.report(id);
    finish(id, groups, cols.id.is_none())
}

// ---------------------------------------------------------------------------------------------
// GPX
// ---------------------------------------------------------------------------------------------

/// Reads GPX traces strictly (see [`parse_gpx_with`]).
pub fn parse_gpx(reader: impl Read, id: &str) -> Result<Vec<Trace>, TraceError> {
    parse_gpx_with(reader, id, &ReadOptions::default())
}

/// Reads a GPX 1.0 or 1.1 document: one trace per non-empty `<trkseg>` and per `<rte>`.
///
/// Points are `<trkpt lat=".." lon="..">` / `<rtept>` with `<time>` (required, RFC 3339; a time
/// without offset is UTC), and optional `<ele>` (altitude, m), `<speed>` (m/s), `<course>`
/// (degrees) and `<hdop>` (accuracy = hdop * [`HDOP_TO_METERS`]). `speed`, `course` and `bearing`
/// are also read from extensions such as Garmin's `gpxtpx:TrackPointExtension` (any namespace
/// prefix). Waypoints and metadata are ignored. Errors name the line of the point's start tag.
/// A document whose root is not `<gpx>` is an [`TraceError::Xml`] error.
pub fn parse_gpx_with(
    mut reader: impl Read,
    id: &str,
    opts: &ReadOptions,
) -> Result<Vec<Trace>, TraceError> {
    let mut data = Vec::new();
    reader.read_to_end(&mut data)?;
    let line_at = |pos: u64| -> u64 {
        let end = (pos as usize).min(data.len());
        1 + data[..end].iter().filter(|&&b| b == b'\n').count() as u64
    };

    #[derive(Clone, Copy, PartialEq)]
    enum Field {
        Time,
        Ele,
        Speed,
        Course,
        Hdop,
    }
    struct Pt {
        pos: u64,
        tag: &'static str,
        coord: Result<(f64, f64), String>,
        time: Option<String>,
        ele: Option<String>,
        speed: Option<String>,
        course: Option<String>,
        hdop: Option<String>,
    }
    // The open trkseg or rte: label, point tag, points.
    let mut container: Option<(String, &'static str, Vec<TracePoint>)> = None;
    let mut groups: Vec<(String, Vec<TracePoint>)> = Vec::new();
    let mut pt: Option<Pt> = None;
    let mut field: Option<(Field, String)> = None;
    let (mut trk_n, mut seg_n, mut rte_n) = (0u32, 0u32, 0u32);
    let mut root_seen = false;
    let mut rejects = Rejects::new(opts);

    let coord_of = |e: &BytesStart| -> Result<(f64, f64), String> {
        let attr = |name: &str| -> Result<f64, String> {
            let a = e
                .try_get_attribute(name)
                .map_err(|err| err.to_string())?
                .ok_or_else(|| format!("no {name} attribute"))?;
            let v = a.unescape_value().map_err(|err| err.to_string())?;
            v.trim()
                .parse::<f64>()
                .map_err(|_| format!("{name}={:?} is not a number", v.as_ref()))
        };
        let (lat, lon) = (attr("lat")?, attr("lon")?);
        check_coord(lat, lon)?;
        Ok((lat, lon))
    };
    // The line is only counted when there is an error to report.
    let finish_pt = |p: Pt| -> Result<TracePoint, TraceError> {
        let at = || Location::Line(line_at(p.pos));
        let (lat, lon) = p
            .coord
            .map_err(|msg| TraceError::BadCoordinate { at: at(), msg })?;
        let time =
            p.time
                .filter(|t| !t.trim().is_empty())
                .ok_or_else(|| TraceError::MissingTime {
                    at: at(),
                    what: format!("<{}> has no <time>", p.tag),
                })?;
        let t_ms = parse_datetime_ms(&time).map_err(|_| TraceError::BadTime {
            at: at(),
            value: time.trim().to_owned(),
            msg: "expected an RFC 3339 date-time such as 2020-12-18T06:15:50Z".to_owned(),
        })?;
        let f = |v: Option<String>, name| {
            v.map(|s| opt_f32(&s, name, at))
                .transpose()
                .map(Option::flatten)
        };
        Ok(TracePoint {
            t_ms,
            lat,
            lon,
            accuracy_m: f(p.hdop, "hdop")?.map(|h| h * HDOP_TO_METERS),
            speed_mps: f(p.speed, "speed")?,
            heading_deg: f(p.course, "course")?,
            altitude_m: f(p.ele, "ele")?,
        })
    };

    let mut xml = quick_xml::Reader::from_reader(&data[..]);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let pos = xml.buffer_position();
        let ev = xml.read_event_into(&mut buf).map_err(|e| TraceError::Xml {
            line: line_at(xml.error_position()),
            msg: e.to_string(),
        })?;
        let (e, empty) = match &ev {
            Event::Start(e) => (Some(e), false),
            Event::Empty(e) => (Some(e), true),
            _ => (None, false),
        };
        if let Some(e) = e {
            let local = e.local_name();
            let name = local.as_ref();
            if !root_seen {
                root_seen = true;
                if name != b"gpx" {
                    return Err(TraceError::Xml {
                        line: line_at(pos),
                        msg: format!(
                            "root element is <{}>, not <gpx>",
                            String::from_utf8_lossy(name)
                        ),
                    });
                }
            }
            if pt.is_some() {
                if empty {
                    continue;
                }
                field = match name {
                    b"time" => Some((Field::Time, String::new())),
                    b"ele" => Some((Field::Ele, String::new())),
                    b"speed" => Some((Field::Speed, String::new())),
                    b"course" | b"bearing" => Some((Field::Course, String::new())),
                    b"hdop" => Some((Field::Hdop, String::new())),
                    _ => None,
                };
                continue;
            }
            match name {
                b"trk" => {
                    trk_n += 1;
                    seg_n = 0;
                }
                b"trkseg" | b"rte" => {
                    let label = if name == b"rte" {
                        rte_n += 1;
                        format!("rte{rte_n}")
                    } else {
                        seg_n += 1;
                        format!("trk{trk_n}/seg{seg_n}")
                    };
                    let tag = if name == b"rte" { "rtept" } else { "trkpt" };
                    if !empty {
                        container = Some((label, tag, Vec::new()));
                    }
                }
                b"trkpt" | b"rtept" => {
                    let Some((_, tag, _)) = &container else {
                        continue;
                    };
                    if name != tag.as_bytes() {
                        continue;
                    }
                    let p = Pt {
                        pos,
                        tag,
                        coord: coord_of(e),
                        time: None,
                        ele: None,
                        speed: None,
                        course: None,
                        hdop: None,
                    };
                    if empty {
                        match finish_pt(p) {
                            Ok(tp) => container.as_mut().expect("open container").2.push(tp),
                            Err(err) => rejects.reject(err)?,
                        }
                    } else {
                        pt = Some(p);
                    }
                }
                _ => {}
            }
            continue;
        }
        match ev {
            Event::Text(t) => {
                if let Some((_, s)) = &mut field {
                    let text = t.unescape().map_err(|e| TraceError::Xml {
                        line: line_at(pos),
                        msg: e.to_string(),
                    })?;
                    s.push_str(&text);
                }
            }
            Event::CData(t) => {
                if let Some((_, s)) = &mut field {
                    s.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::End(e) => {
                let local = e.local_name();
                let name = local.as_ref();
                if let Some(p) = &mut pt {
                    if name == p.tag.as_bytes() {
                        let p = pt.take().expect("open point");
                        field = None;
                        match finish_pt(p) {
                            Ok(tp) => container.as_mut().expect("open container").2.push(tp),
                            Err(err) => rejects.reject(err)?,
                        }
                    } else if let Some((f, s)) = field.take() {
                        let slot = match f {
                            Field::Time => &mut p.time,
                            Field::Ele => &mut p.ele,
                            Field::Speed => &mut p.speed,
                            Field::Course => &mut p.course,
                            Field::Hdop => &mut p.hdop,
                        };
                        // The first occurrence wins (a <time> in an extension must not override).
                        if slot.is_none() {
                            *slot = Some(s);
                        }
                    }
                } else if name == b"trkseg" || name == b"rte" {
                    if let Some((label, _, points)) = container.take() {
                        groups.push((label, points));
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if let Some((label, _, points)) = container.take() {
        groups.push((label, points));
    }
    rejects.report(id);
    finish(id, groups, true)
}

// ---------------------------------------------------------------------------------------------
// GeoJSON
// ---------------------------------------------------------------------------------------------

/// Reads GeoJSON traces strictly (see [`parse_geojson_with`]).
pub fn parse_geojson(s: &str, id: &str) -> Result<Vec<Trace>, TraceError> {
    parse_geojson_with(s, id, &ReadOptions::default())
}

/// Reads a GeoJSON FeatureCollection, Feature or bare geometry.
///
/// - LineString and MultiPoint features take one time per coordinate from the first of the
///   properties `coordTimes` (as written by togeojson), `times`, `timestamps`. MultiLineString
///   features take `coordTimes` as one array per line (togeojson) or one flat array for all
///   coordinates, one trace per line.
/// - Point features take their time from the property `time` or `timestamp`, and optionally
///   `speed` (m/s), `heading`/`bearing`/`course` (degrees), `accuracy` (m); all of a file's Point
///   features form one trace.
/// - A time is a JSON number (Unix **milliseconds**) or a string (RFC 3339, or
///   `YYYY-MM-DD HH:MM:SS` as UTC). Coordinates are `[lon, lat]` or `[lon, lat, altitude_m]`.
/// - Other geometries (polygons...) and features without geometry are ignored. A line without
///   times is [`TraceError::MissingTime`]; a times array of the wrong length is
///   [`TraceError::GeoJson`]. Errors name the JSON path, e.g. `features[2].geometry.coordinates[7]`.
pub fn parse_geojson_with(s: &str, id: &str, opts: &ReadOptions) -> Result<Vec<Trace>, TraceError> {
    if s.trim().is_empty() {
        return Err(TraceError::Empty);
    }
    let root: Value = serde_json::from_str(s).map_err(|e| TraceError::Json {
        line: e.line(),
        column: e.column(),
        msg: e.to_string(),
    })?;
    let gj_err = |at: &str, msg: String| TraceError::GeoJson {
        at: Location::Json(at.to_owned()),
        msg,
    };
    let ty = root.get("type").and_then(Value::as_str).unwrap_or("");
    let empty = Map::new();
    // (path prefix, feature index, geometry, properties)
    let mut features: Vec<(String, usize, &Value, &Map<String, Value>)> = Vec::new();
    match ty {
        "FeatureCollection" => {
            let list = root
                .get("features")
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    gj_err("$", "FeatureCollection without a \"features\" array".into())
                })?;
            for (i, f) in list.iter().enumerate() {
                let props = f
                    .get("properties")
                    .and_then(Value::as_object)
                    .unwrap_or(&empty);
                if let Some(g) = f.get("geometry").filter(|g| !g.is_null()) {
                    features.push((format!("features[{i}]"), i, g, props));
                }
            }
        }
        "Feature" => {
            let props = root
                .get("properties")
                .and_then(Value::as_object)
                .unwrap_or(&empty);
            if let Some(g) = root.get("geometry").filter(|g| !g.is_null()) {
                features.push(("$".into(), 0, g, props));
            }
        }
        "LineString" | "MultiLineString" | "Point" | "MultiPoint" => {
            features.push((String::new(), 0, &root, &empty));
        }
        other => {
            return Err(gj_err(
                "$.type",
                format!("expected FeatureCollection, Feature or a geometry, found {other:?}"),
            ))
        }
    }

    let mut rejects = Rejects::new(opts);
    let mut groups: Vec<(String, Vec<TracePoint>)> = Vec::new();
    let mut points_group: Option<usize> = None;
    for (prefix, fi, geom, props) in features {
        let gpath = if prefix.is_empty() {
            "$".to_owned()
        } else {
            format!("{prefix}.geometry")
        };
        let ppath = if prefix.is_empty() {
            "$".to_owned()
        } else {
            format!("{prefix}.properties")
        };
        let gty = geom.get("type").and_then(Value::as_str).unwrap_or("");
        let coords = geom.get("coordinates");
        match gty {
            "LineString" | "MultiPoint" | "MultiLineString" => {
                let coords = coords.and_then(Value::as_array).ok_or_else(|| {
                    gj_err(&gpath, format!("{gty} without a \"coordinates\" array"))
                })?;
                // Lines as (path of the coordinates array, coordinates).
                let lines: Vec<(String, &Vec<Value>)> = if gty == "MultiLineString" {
                    coords
                        .iter()
                        .enumerate()
                        .map(|(j, l)| {
                            l.as_array()
                                .map(|a| (format!("{gpath}.coordinates[{j}]"), a))
                                .ok_or_else(|| {
                                    gj_err(
                                        &format!("{gpath}.coordinates[{j}]"),
                                        "not an array".into(),
                                    )
                                })
                        })
                        .collect::<Result<_, _>>()?
                } else {
                    vec![(format!("{gpath}.coordinates"), coords)]
                };
                let times = ["coordTimes", "times", "timestamps"]
                    .iter()
                    .find_map(|k| props.get(*k).filter(|v| !v.is_null()).map(|v| (*k, v)));
                let Some((tkey, times)) = times else {
                    rejects.reject(TraceError::MissingTime {
                        at: Location::Json(gpath.clone()),
                        what: format!("{gty} without per-coordinate times (properties coordTimes, times or timestamps)"),
                    })?;
                    continue;
                };
                let tpath = format!("{ppath}.{tkey}");
                let tarr = times
                    .as_array()
                    .ok_or_else(|| gj_err(&tpath, "not an array".into()))?;
                // Times per line: nested arrays (togeojson MultiLineString) or one flat array.
                let nested = gty == "MultiLineString" && tarr.first().is_some_and(Value::is_array);
                let mut flat_offset = 0usize;
                for (j, (cpath, line)) in lines.iter().enumerate() {
                    let (lt, lpath, offset): (&[Value], String, usize) = if nested {
                        let a = tarr.get(j).and_then(Value::as_array).ok_or_else(|| {
                            gj_err(
                                &format!("{tpath}[{j}]"),
                                "missing times for this line".into(),
                            )
                        })?;
                        (a, format!("{tpath}[{j}]"), 0)
                    } else {
                        (tarr, tpath.clone(), flat_offset)
                    };
                    let expect = if nested || gty != "MultiLineString" {
                        line.len()
                    } else {
                        lines.iter().map(|(_, l)| l.len()).sum()
                    };
                    if lt.len() != expect {
                        return Err(gj_err(
                            &lpath,
                            format!("{} times for {expect} coordinates", lt.len()),
                        ));
                    }
                    let mut pts = Vec::with_capacity(line.len());
                    for (k, c) in line.iter().enumerate() {
                        let cat = || format!("{cpath}[{k}]");
                        let tat = format!("{lpath}[{}]", offset + k);
                        match json_point(c, &lt[offset + k], &cat, &tat) {
                            Ok(p) => pts.push(p),
                            Err(e) => rejects.reject(e)?,
                        }
                    }
                    flat_offset += line.len();
                    let label = if gty == "MultiLineString" {
                        format!("f{fi}/line{j}")
                    } else {
                        format!("f{fi}")
                    };
                    groups.push((label, pts));
                }
            }
            "Point" => {
                let cpath = format!("{gpath}.coordinates");
                let c = coords.ok_or_else(|| gj_err(&gpath, "Point without coordinates".into()))?;
                let t = ["time", "timestamp"]
                    .iter()
                    .find_map(|k| props.get(*k).map(|v| (*k, v)));
                let res = match t {
                    None | Some((_, Value::Null)) => Err(TraceError::MissingTime {
                        at: Location::Json(ppath.clone()),
                        what: "Point feature without a \"time\" property".into(),
                    }),
                    Some((k, tv)) => json_point(c, tv, &|| cpath.clone(), &format!("{ppath}.{k}"))
                        .and_then(|mut p| {
                            let at = || Location::Json(ppath.clone());
                            let f = |keys: &[&str], name| -> Result<Option<f32>, TraceError> {
                                match keys.iter().find_map(|k| props.get(*k)) {
                                    None | Some(Value::Null) => Ok(None),
                                    Some(Value::Number(n)) => {
                                        Ok(n.as_f64().map(|v| v as f32).filter(|v| v.is_finite()))
                                    }
                                    Some(Value::String(s)) => opt_f32(s, name, at),
                                    Some(v) => Err(TraceError::BadValue {
                                        at: at(),
                                        field: name,
                                        value: v.to_string(),
                                    }),
                                }
                            };
                            p.speed_mps = f(&["speed"], "speed")?;
                            p.heading_deg = f(&["heading", "bearing", "course"], "heading")?;
                            p.accuracy_m = f(&["accuracy"], "accuracy")?;
                            Ok(p)
                        }),
                };
                match res {
                    Ok(p) => {
                        let g = *points_group.get_or_insert_with(|| {
                            groups.push(("points".into(), Vec::new()));
                            groups.len() - 1
                        });
                        groups[g].1.push(p);
                    }
                    Err(e) => rejects.reject(e)?,
                }
            }
            _ => {}
        }
    }
    rejects.report(id);
    finish(id, groups, true)
}

/// One `[lon, lat, alt?]` coordinate with its time value.
fn json_point(
    c: &Value,
    t: &Value,
    cat: &dyn Fn() -> String,
    tat: &str,
) -> Result<TracePoint, TraceError> {
    let bad = |msg: String| TraceError::BadCoordinate {
        at: Location::Json(cat()),
        msg,
    };
    let arr = c
        .as_array()
        .ok_or_else(|| bad(format!("expected [lon, lat], found {c}")))?;
    let num = |i: usize, what: &str| -> Result<f64, TraceError> {
        arr.get(i)
            .and_then(Value::as_f64)
            .ok_or_else(|| bad(format!("{what} is missing or not a number in {c}")))
    };
    let (lon, lat) = (num(0, "lon")?, num(1, "lat")?);
    check_coord(lat, lon).map_err(bad)?;
    let altitude_m = arr.get(2).and_then(Value::as_f64).map(|a| a as f32);
    let t_ms = match t {
        Value::Null => {
            return Err(TraceError::MissingTime {
                at: Location::Json(tat.to_owned()),
                what: "null time".into(),
            })
        }
        Value::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|v| v.abs() <= MAX_ABS_MS)
                    .map(|v| v.round() as i64)
            })
            .ok_or_else(|| TraceError::BadTime {
                at: Location::Json(tat.to_owned()),
                value: n.to_string(),
                msg: "expected Unix milliseconds".into(),
            })?,
        Value::String(s) => parse_datetime_ms(s).map_err(|msg| TraceError::BadTime {
            at: Location::Json(tat.to_owned()),
            value: s.clone(),
            msg,
        })?,
        v => {
            return Err(TraceError::BadTime {
                at: Location::Json(tat.to_owned()),
                value: v.to_string(),
                msg: "expected a string or Unix milliseconds".into(),
            })
        }
    };
    Ok(TracePoint {
        altitude_m,
        ..TracePoint::new(t_ms, lat, lon)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const T0: i64 = 1_714_982_400_000; // 2024-05-06T08:00:00Z

    fn err_text<T: fmt::Debug>(r: Result<T, TraceError>) -> (TraceError, String) {
        let e = r.expect_err("expected an error");
        let s = e.to_string();
        (e, s)
    }

    /// `../shared/data/<rel>` (or `/work/shared/data/<rel>`), or `None` with a printed note.
    fn shared(rel: &str) -> Option<PathBuf> {
        let bases = [
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"),
            PathBuf::from("/work/shared/data"),
        ];
        let found = bases.iter().map(|b| b.join(rel)).find(|p| p.exists());
        if found.is_none() {
            eprintln!("note: skipping, shared data {rel} not found");
        }
        found
    }

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/traces")
            .join(name)
    }

    // ---- time parsing ------------------------------------------------------------------------

    #[test]
    fn time_formats() {
        use TimeFormat::*;
        assert_eq!(parse_time("1714982400", &UnixSeconds), Ok(T0));
        assert_eq!(parse_time(" 1714982400.25 ", &UnixSeconds), Ok(T0 + 250));
        assert_eq!(parse_time("1714982400123", &UnixMillis), Ok(T0 + 123));
        assert_eq!(parse_time("2024-05-06 08:00:00", &DateTime), Ok(T0));
        assert_eq!(parse_time("2024-05-06 08:00:00.5", &DateTime), Ok(T0 + 500));
        assert_eq!(parse_time("2024-05-06T08:00:00", &DateTime), Ok(T0));
        assert_eq!(parse_time("2024-05-06T08:00:00Z", &DateTime), Ok(T0));
        assert_eq!(
            parse_time("2024-05-06T08:00:00.250Z", &DateTime),
            Ok(T0 + 250)
        );
        assert_eq!(parse_time("2024-05-06T10:00:00+02:00", &DateTime), Ok(T0));
        assert_eq!(
            parse_time("06/05/2024 08:00", &Strftime("%d/%m/%Y %H:%M".into())),
            Ok(T0)
        );
        assert_eq!(parse_time("1714982400", &Auto), Ok(T0));
        assert_eq!(parse_time("1714982400000", &Auto), Ok(T0));
        assert_eq!(parse_time("2024-05-06 08:00:00", &Auto), Ok(T0));
        assert!(parse_time("yesterday", &DateTime).is_err());
        assert!(parse_time("2024-05-06", &UnixSeconds).is_err());
        assert!(parse_time("1e300", &UnixSeconds).is_err());
        assert!(parse_time("NaN", &UnixMillis).is_err());
    }

    // ---- GPX ---------------------------------------------------------------------------------

    const GPX_MULTI: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<gpx version="1.1" xmlns="http://www.topografix.com/GPX/1/1"
     xmlns:gpxtpx="http://www.garmin.com/xmlschemas/TrackPointExtension/v1">
  <metadata><time>2000-01-01T00:00:00Z</time></metadata>
  <wpt lat="1" lon="1"><time>2000-01-01T00:00:00Z</time></wpt>
  <trk><name>a</name>
    <trkseg>
      <trkpt lat="52.5" lon="13.4"><ele>34.5</ele><time>2024-05-06T08:00:10Z</time>
        <hdop>2</hdop>
        <extensions><gpxtpx:TrackPointExtension><gpxtpx:speed>4.5</gpxtpx:speed><gpxtpx:course>90</gpxtpx:course></gpxtpx:TrackPointExtension></extensions>
      </trkpt>
      <trkpt lat="52.6" lon="13.5"><time>2024-05-06T08:00:00Z</time></trkpt>
    </trkseg>
    <trkseg/>
    <trkseg>
      <trkpt lat="-33.9" lon="151.2"><time>2024-05-06T09:00:00.5Z</time><speed>3</speed><course>180.5</course></trkpt>
    </trkseg>
  </trk>
  <trk><trkseg></trkseg></trk>
  <rte><rtept lat="10" lon="20"><time>2024-05-06T10:00:00Z</time></rtept></rte>
</gpx>
"#;

    #[test]
    fn gpx_segments_routes_fields_and_sorting() {
        let traces = parse_gpx(GPX_MULTI.as_bytes(), "x").unwrap();
        let ids: Vec<_> = traces.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["x/trk1/seg1", "x/trk1/seg3", "x/rte1"]);
        let a = &traces[0];
        // Out-of-order points are sorted.
        assert_eq!(
            a.points.iter().map(|p| p.t_ms).collect::<Vec<_>>(),
            [T0, T0 + 10_000]
        );
        assert_eq!(a.points[0], TracePoint::new(T0, 52.6, 13.5));
        let p = a.points[1];
        assert_eq!((p.lat, p.lon), (52.5, 13.4));
        assert_eq!(p.altitude_m, Some(34.5));
        assert_eq!(p.accuracy_m, Some(2.0 * HDOP_TO_METERS));
        assert_eq!(p.speed_mps, Some(4.5));
        assert_eq!(p.heading_deg, Some(90.0));
        let b = traces[1].points[0];
        assert_eq!(b.t_ms, T0 + 3_600_500);
        assert_eq!((b.speed_mps, b.heading_deg), (Some(3.0), Some(180.5)));
        assert_eq!(traces[2].points[0].t_ms, T0 + 7_200_000);
    }

    #[test]
    fn gpx_single_trace_takes_base_id() {
        let gpx = r#"<gpx><trk><trkseg><trkpt lat="1" lon="2"><time>2024-05-06T08:00:00Z</time></trkpt></trkseg></trk></gpx>"#;
        let t = parse_gpx(gpx.as_bytes(), "solo").unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].id, "solo");
    }

    #[test]
    fn gpx_missing_time_names_the_line() {
        let gpx = "<gpx>\n<trk><trkseg>\n<trkpt lat=\"1\" lon=\"2\"><time>2024-05-06T08:00:00Z</time></trkpt>\n<trkpt lat=\"1\" lon=\"2\"><ele>3</ele></trkpt>\n<trkpt lat=\"1\" lon=\"2\"/>\n</trkseg></trk></gpx>";
        let (e, s) = err_text(parse_gpx(gpx.as_bytes(), "x"));
        assert!(
            matches!(
                &e,
                TraceError::MissingTime {
                    at: Location::Line(4),
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(
            s.contains("line 4") && s.contains("<trkpt> has no <time>"),
            "{s}"
        );
        // Lenient: both untimed points (one self-closing) are skipped.
        let t = parse_gpx_with(gpx.as_bytes(), "x", &ReadOptions::lenient()).unwrap();
        assert_eq!(t[0].len(), 1);
        // Only untimed points: nothing left.
        let untimed = "<gpx><trk><trkseg><trkpt lat=\"1\" lon=\"2\"/></trkseg></trk></gpx>";
        let opts = ReadOptions {
            skip_untimed: true,
            skip_invalid: false,
        };
        assert!(matches!(
            parse_gpx_with(untimed.as_bytes(), "x", &opts),
            Err(TraceError::Empty)
        ));
    }

    #[test]
    fn gpx_bad_coordinates_and_times() {
        let cases = [
            (
                "<trkpt lat=\"abc\" lon=\"2\">",
                "lat=\"abc\" is not a number",
            ),
            ("<trkpt lat=\"91\" lon=\"2\">", "lat 91 is not in [-90, 90]"),
            (
                "<trkpt lat=\"1\" lon=\"-180.5\">",
                "lon -180.5 is not in [-180, 180]",
            ),
            ("<trkpt lon=\"2\">", "no lat attribute"),
        ];
        for (tag, want) in cases {
            let gpx = format!("<gpx><trk><trkseg>\n\n{tag}<time>2024-05-06T08:00:00Z</time></trkpt></trkseg></trk></gpx>");
            let (e, s) = err_text(parse_gpx(gpx.as_bytes(), "x"));
            assert!(
                matches!(
                    e,
                    TraceError::BadCoordinate {
                        at: Location::Line(3),
                        ..
                    }
                ),
                "{e:?}"
            );
            assert!(s.contains(want), "{s}");
        }
        let gpx = "<gpx><trk><trkseg><trkpt lat=\"1\" lon=\"2\"><time>noon</time></trkpt></trkseg></trk></gpx>";
        let (e, _) = err_text(parse_gpx(gpx.as_bytes(), "x"));
        assert!(
            matches!(e, TraceError::BadTime { ref value, .. } if value == "noon"),
            "{e:?}"
        );
        let gpx = "<gpx><trk><trkseg><trkpt lat=\"1\" lon=\"2\"><time>2024-05-06T08:00:00Z</time><speed>fast</speed></trkpt></trkseg></trk></gpx>";
        let (e, _) = err_text(parse_gpx(gpx.as_bytes(), "x"));
        assert!(
            matches!(e, TraceError::BadValue { field: "speed", .. }),
            "{e:?}"
        );
        let t = parse_gpx_with(gpx.as_bytes(), "x", &ReadOptions::lenient());
        assert!(matches!(t, Err(TraceError::Empty)));
    }

    #[test]
    fn gpx_empty_malformed_and_foreign() {
        assert!(matches!(parse_gpx(&b""[..], "x"), Err(TraceError::Empty)));
        assert!(matches!(
            parse_gpx(&b"<?xml version=\"1.0\"?>\n<gpx/>"[..], "x"),
            Err(TraceError::Empty)
        ));
        let wpt_only =
            "<gpx><wpt lat=\"1\" lon=\"2\"><time>2024-05-06T08:00:00Z</time></wpt></gpx>";
        assert!(matches!(
            parse_gpx(wpt_only.as_bytes(), "x"),
            Err(TraceError::Empty)
        ));
        let (e, s) = err_text(parse_gpx(&b"<html>\n<body/></html>"[..], "x"));
        assert!(matches!(e, TraceError::Xml { line: 1, .. }), "{e:?}");
        assert!(s.contains("not <gpx>"), "{s}");
        let broken = "<gpx>\n<trk>\n<trkseg>\n</trk>\n</gpx>";
        let (e, _) = err_text(parse_gpx(broken.as_bytes(), "x"));
        assert!(matches!(e, TraceError::Xml { line: 4, .. }), "{e:?}");
    }

    // ---- CSV ---------------------------------------------------------------------------------

    const GEOLIFE_CSV: &str = "lat,lng,datetime,uid
39.984094,116.319236,2008-10-23 05:53:05,001
39.984198,116.319322,2008-10-23 05:53:06,001
40.000000,116.300000,2008-10-24 01:00:00,005
39.984224,116.319402,2008-10-23 05:53:01,001
39.984211,116.319389,2008-10-23 05:53:06,001
";

    #[test]
    fn csv_geolife_splits_ids_and_sorts_stably() {
        let t = parse_csv(GEOLIFE_CSV.as_bytes(), &CsvMapping::geolife(), "g").unwrap();
        assert_eq!(
            t.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
            ["g/001", "g/005"]
        );
        assert_eq!(t[0].len(), 4);
        assert_eq!(t[1].len(), 1);
        let lats: Vec<f64> = t[0].points.iter().map(|p| p.lat).collect();
        // 05:53:01 first, then 05:53:05, then the two 05:53:06 rows in file order.
        assert_eq!(lats, [39.984224, 39.984094, 39.984198, 39.984211]);
        let t0 = NaiveDateTime::parse_from_str("2008-10-23 05:53:01", "%Y-%m-%d %H:%M:%S")
            .unwrap()
            .and_utc()
            .timestamp_millis();
        assert_eq!(t[0].start_ms(), Some(t0));
        assert_eq!(t[0].duration_ms(), 5_000);
    }

    #[test]
    fn csv_indices_without_header_and_optional_columns() {
        let m = CsvMapping::parse(
            "lat=1,lon=2,time=3:unix,id=0,speed=4,heading=5,acc=6,alt=7,header=no",
        )
        .unwrap();
        let csv = "d1,52.5,13.4,1714982400,4.5,,3,NA\nd2,10,20,1714982401.5,nan,270,,12\n\nd1,52.6,13.5,1714982399,0,0,,\n";
        let t = parse_csv(csv.as_bytes(), &m, "c").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].id, "c/d1");
        let p = t[0].points[1];
        assert_eq!(
            p,
            TracePoint {
                accuracy_m: Some(3.0),
                speed_mps: Some(4.5),
                ..TracePoint::new(T0, 52.5, 13.4)
            }
        );
        assert_eq!(t[0].points[0].t_ms, T0 - 1000);
        let q = t[1].points[0];
        assert_eq!(
            (q.t_ms, q.speed_mps, q.heading_deg, q.altitude_m),
            (T0 + 1500, None, Some(270.0), Some(12.0))
        );
        // No id column: one trace with the base id.
        let m = CsvMapping::parse("lat=1,lon=2,time=3:unix,header=no").unwrap();
        let t = parse_csv(csv.as_bytes(), &m, "c").unwrap();
        assert_eq!((t.len(), t[0].id.as_str(), t[0].len()), (1, "c", 3));
    }

    #[test]
    fn csv_bad_rows_name_the_line() {
        let csv = "lat,lng,datetime,uid\n1,2,2024-05-06 08:00:00,a\n1x,2,2024-05-06 08:00:00,a\n";
        let (e, s) = err_text(parse_csv(csv.as_bytes(), &CsvMapping::geolife(), "g"));
        assert!(
            matches!(
                e,
                TraceError::BadCoordinate {
                    at: Location::Line(3),
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(
            s.starts_with("line 3: bad coordinate: lat \"1x\" (column lat) is not a number"),
            "{s}"
        );

        let csv = "lat,lng,datetime,uid\n1,2,,a\n";
        let (e, s) = err_text(parse_csv(csv.as_bytes(), &CsvMapping::geolife(), "g"));
        assert!(
            matches!(
                e,
                TraceError::MissingTime {
                    at: Location::Line(2),
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(s.contains("empty time cell (column datetime)"), "{s}");

        let csv = "lat,lng,datetime,uid\n1,2,23/10/2008,a\n";
        let (e, _) = err_text(parse_csv(csv.as_bytes(), &CsvMapping::geolife(), "g"));
        assert!(
            matches!(
                e,
                TraceError::BadTime {
                    at: Location::Line(2),
                    ..
                }
            ),
            "{e:?}"
        );

        let csv = "lat,lng,datetime,uid\n1,200,2024-05-06 08:00:00,a\n1\n";
        let (e, s) = err_text(parse_csv(csv.as_bytes(), &CsvMapping::geolife(), "g"));
        assert!(
            matches!(
                e,
                TraceError::BadCoordinate {
                    at: Location::Line(2),
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(s.contains("lon 200 is not in [-180, 180]"), "{s}");

        // Lenient: bad rows skipped, good ones kept; a short row is a bad coordinate too.
        let csv = "lat,lng,datetime,uid\n1,200,2024-05-06 08:00:00,a\n1\n,,,\n3,4,2024-05-06 08:00:00,a\n5,6,,a\n";
        let t = parse_csv_with(
            csv.as_bytes(),
            &CsvMapping::geolife(),
            "g",
            &ReadOptions::lenient(),
        )
        .unwrap();
        assert_eq!((t.len(), t[0].len(), t[0].points[0].lat), (1, 1, 3.0));
        let opts = ReadOptions {
            skip_untimed: false,
            skip_invalid: true,
        };
        let (e, _) = err_text(parse_csv_with(
            csv.as_bytes(),
            &CsvMapping::geolife(),
            "g",
            &opts,
        ));
        assert!(
            matches!(
                e,
                TraceError::MissingTime {
                    at: Location::Line(6),
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn csv_header_read_as_data_gets_a_hint() {
        let m = CsvMapping::parse("lat=0,lon=1,time=2:datetime,header=no").unwrap();
        let (_, s) = err_text(parse_csv(GEOLIFE_CSV.as_bytes(), &m, "g"));
        assert!(s.starts_with("line 1: ") && s.contains("header=yes"), "{s}");
        // Default has_header=yes with indices reads it fine.
        let m = CsvMapping::parse("lat=0,lon=1,time=2:datetime,id=3").unwrap();
        let t = parse_csv(GEOLIFE_CSV.as_bytes(), &m, "g").unwrap();
        assert_eq!(t.iter().map(Trace::len).sum::<usize>(), 5);
    }

    #[test]
    fn csv_empty_header_only_and_missing_column_name() {
        assert!(matches!(
            parse_csv(&b""[..], &CsvMapping::geolife(), "g"),
            Err(TraceError::Empty)
        ));
        assert!(matches!(
            parse_csv(&b"lat,lng,datetime,uid\n"[..], &CsvMapping::geolife(), "g"),
            Err(TraceError::Empty)
        ));
        let m = CsvMapping::parse("lat=0,lon=1,time=2,header=no").unwrap();
        assert!(matches!(
            parse_csv(&b"\n\n"[..], &m, "g"),
            Err(TraceError::Empty)
        ));
        let (e, s) = err_text(parse_csv(
            &b"a,b,c\n1,2,3\n"[..],
            &CsvMapping::geolife(),
            "g",
        ));
        assert!(matches!(e, TraceError::Mapping(_)), "{e:?}");
        assert!(s.contains("no column \"lat\" in the header"), "{s}");
        let m = CsvMapping::parse("lat=a,lon=b,time=c,header=no").unwrap();
        let (e, _) = err_text(parse_csv(&b"1,2,3\n"[..], &m, "g"));
        assert!(matches!(e, TraceError::Mapping(_)), "{e:?}");
    }

    #[test]
    fn csv_gtfs_rt_columns() {
        let csv = ",id,vehicle.trip.trip_id,vehicle.position.latitude,vehicle.position.longitude,vehicle.position.bearing,vehicle.position.speed,vehicle.timestamp
1,5461,T1,38.92,-77.05,,0.0,1714982400
2,5463,T2,38.91,-77.01,119.0,7.9,1714982430
3,5461,T1,38.93,-77.06,45,2.5,1714982430
";
        for m in [CsvMapping::gtfs_rt(), CsvMapping::parse("gtfs-rt").unwrap()] {
            let t = parse_csv(csv.as_bytes(), &m, "w").unwrap();
            assert_eq!(
                t.iter()
                    .map(|t| (t.id.as_str(), t.len()))
                    .collect::<Vec<_>>(),
                [("w/T1", 2), ("w/T2", 1)]
            );
            assert_eq!(t[0].points[0].heading_deg, None);
            assert_eq!(t[0].points[1].heading_deg, Some(45.0));
            assert_eq!(t[1].points[0].speed_mps, Some(7.9));
            assert_eq!(t[0].points[0].t_ms, T0);
        }
        // Override the preset's id: one trace per vehicle.
        let m = CsvMapping::parse("gtfs-rt,id=id").unwrap();
        let t = parse_csv(csv.as_bytes(), &m, "w").unwrap();
        assert_eq!(t[0].id, "w/5461");
    }

    #[test]
    fn csv_delimiter_and_empty_id_cell() {
        let m = CsvMapping::parse("lat=lat,lon=lon,time=t:ms,id=who,delim=;").unwrap();
        let t = parse_csv(
            &b"who;lat;lon;t\n;1;2;1714982400000\nx;1;2;1714982400000\n"[..],
            &m,
            "s",
        )
        .unwrap();
        assert_eq!(
            t.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
            ["s/_", "s/x"]
        );
    }

    #[test]
    fn mapping_strings() {
        let m = CsvMapping::parse("lat=1,lon=2,time=3:unix,id=0").unwrap();
        assert_eq!(m.lat, Column::Index(1));
        assert_eq!(m.lon, Column::Index(2));
        assert_eq!(
            (m.time.clone(), m.time_format.clone()),
            (Column::Index(3), TimeFormat::UnixSeconds)
        );
        assert_eq!(m.id, Some(Column::Index(0)));
        assert!(m.has_header);
        let m: CsvMapping = "lat=vehicle.position.latitude, lng=vehicle.position.longitude, time=vehicle.timestamp:unix, heading=vehicle.position.bearing".parse().unwrap();
        assert_eq!(m.lat, Column::Name("vehicle.position.latitude".into()));
        assert_eq!(
            m.heading,
            Some(Column::Name("vehicle.position.bearing".into()))
        );
        let m =
            CsvMapping::parse("lat=0,lon=1,time=2:%d/%m/%Y %H:%M:%S,delim=tab,header=no").unwrap();
        assert_eq!(
            m.time_format,
            TimeFormat::Strftime("%d/%m/%Y %H:%M:%S".into())
        );
        assert_eq!((m.delimiter, m.has_header), (b'\t', false));
        assert_eq!(
            CsvMapping::parse("lat=0,lon=1,time=2").unwrap().time_format,
            TimeFormat::Auto
        );
        // Presets keep their time format unless overridden; empty value clears a column.
        let m = CsvMapping::parse("geolife,id=,time=when").unwrap();
        assert_eq!(
            (m.id, m.time, m.time_format),
            (None, Column::Name("when".into()), TimeFormat::DateTime)
        );
        for bad in [
            "lat=0,lon=1",
            "lat=0,lon=1,time=2:fortnights",
            "foo",
            "lat=0,lon=1,time=2,colour=red",
            "lat=0,lon=1,time=2,header=maybe",
            "lat=0,geolife",
        ] {
            assert!(
                matches!(CsvMapping::parse(bad), Err(TraceError::Mapping(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn format_strings() {
        assert_eq!("gpx".parse::<TraceFormat>().unwrap(), TraceFormat::Gpx);
        assert_eq!(
            "GeoJSON".parse::<TraceFormat>().unwrap(),
            TraceFormat::GeoJson
        );
        assert_eq!(
            "geolife".parse::<TraceFormat>().unwrap(),
            TraceFormat::Csv(CsvMapping::geolife())
        );
        assert_eq!(
            "gtfs-rt".parse::<TraceFormat>().unwrap(),
            TraceFormat::Csv(CsvMapping::gtfs_rt())
        );
        let f = "csv:lat=1,lon=2,time=3:unix,id=0"
            .parse::<TraceFormat>()
            .unwrap();
        assert_eq!(
            f,
            TraceFormat::Csv(CsvMapping::parse("lat=1,lon=2,time=3:unix,id=0").unwrap())
        );
        assert!(matches!(
            "csv".parse::<TraceFormat>(),
            Err(TraceError::UnknownFormat(_))
        ));
        assert!(matches!(
            "kml".parse::<TraceFormat>(),
            Err(TraceError::UnknownFormat(_))
        ));
    }

    #[test]
    fn detect_headers() {
        assert_eq!(
            CsvMapping::detect(&["lat", "lng", "datetime", "uid"]),
            Some(CsvMapping {
                time_format: TimeFormat::Auto,
                ..CsvMapping::geolife()
            })
        );
        let m =
            CsvMapping::detect(&["Driver_ID", "Latitude", "Longitude", "t_ms", "Speed"]).unwrap();
        assert_eq!(m.id, Some(Column::Name("Driver_ID".into())));
        assert_eq!(m.time_format, TimeFormat::UnixMillis);
        assert_eq!(m.speed, Some(Column::Name("Speed".into())));
        assert_eq!(
            CsvMapping::detect(&[
                "",
                "vehicle.position.latitude",
                "vehicle.position.longitude",
                "vehicle.timestamp"
            ])
            .unwrap()
            .id,
            None
        );
        assert_eq!(CsvMapping::detect(&["x", "y", "z"]), None);
        assert_eq!(CsvMapping::detect(&["lat", "lon"]), None);
    }

    // ---- GeoJSON -----------------------------------------------------------------------------

    #[test]
    fn geojson_togeojson_linestring() {
        let s = r#"{"type":"FeatureCollection","features":[
            {"type":"Feature","properties":{"name":"a","coordTimes":["2024-05-06T08:00:10Z","2024-05-06T08:00:00Z"]},
             "geometry":{"type":"LineString","coordinates":[[13.4,52.5,34.5],[13.5,52.6]]}}]}"#;
        let t = parse_geojson(s, "j").unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].id, "j");
        assert_eq!(t[0].points[0], TracePoint::new(T0, 52.6, 13.5));
        assert_eq!(t[0].points[1].altitude_m, Some(34.5));
    }

    #[test]
    fn geojson_multilines_times_and_points() {
        let s = r#"{"type":"FeatureCollection","features":[
            {"type":"Feature","properties":{"coordTimes":[["2024-05-06T08:00:00Z"],["2024-05-06T08:00:01Z","2024-05-06T08:00:02Z"]]},
             "geometry":{"type":"MultiLineString","coordinates":[[[1,2]],[[3,4],[5,6]]]}},
            {"type":"Feature","properties":{"times":[1714982400000, 1714982400500.4]},
             "geometry":{"type":"LineString","coordinates":[[1,2],[3,4]]}},
            {"type":"Feature","properties":{"timestamps":[1714982400000,1714982401000,1714982402000]},
             "geometry":{"type":"MultiLineString","coordinates":[[[1,2]],[[3,4],[5,6]]]}},
            {"type":"Feature","properties":{"time":"2024-05-06T08:00:05Z","speed":3.5,"bearing":"90"},"geometry":{"type":"Point","coordinates":[7,8]}},
            {"type":"Feature","properties":{},"geometry":{"type":"Polygon","coordinates":[]}},
            {"type":"Feature","properties":{"time":1714982400000},"geometry":{"type":"Point","coordinates":[9,10,11]}},
            {"type":"Feature","properties":null,"geometry":null}]}"#;
        let t = parse_geojson(s, "j").unwrap();
        let summary: Vec<_> = t.iter().map(|t| (t.id.as_str(), t.len())).collect();
        assert_eq!(
            summary,
            [
                ("j/f0/line0", 1),
                ("j/f0/line1", 2),
                ("j/f1", 2),
                ("j/f2/line0", 1),
                ("j/f2/line1", 2),
                ("j/points", 2)
            ]
        );
        assert_eq!(t[1].points[1].t_ms, T0 + 2000);
        assert_eq!(t[2].points[1].t_ms, T0 + 500);
        assert_eq!(t[4].points[1].t_ms, T0 + 2000);
        let pts = &t[5].points;
        assert_eq!((pts[0].lat, pts[0].altitude_m), (10.0, Some(11.0)));
        assert_eq!(
            (pts[1].t_ms, pts[1].speed_mps, pts[1].heading_deg),
            (T0 + 5000, Some(3.5), Some(90.0))
        );
    }

    #[test]
    fn geojson_errors() {
        let no_times = r#"{"type":"Feature","properties":{},"geometry":{"type":"LineString","coordinates":[[1,2]]}}"#;
        let (e, s) = err_text(parse_geojson(no_times, "j"));
        assert!(matches!(e, TraceError::MissingTime { .. }), "{e:?}");
        assert!(
            s.starts_with("$.geometry: LineString without per-coordinate times"),
            "{s}"
        );
        assert!(matches!(
            parse_geojson_with(no_times, "j", &ReadOptions::lenient()),
            Err(TraceError::Empty)
        ));

        let wrong_len = r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"coordTimes":["2024-05-06T08:00:00Z"]},"geometry":{"type":"LineString","coordinates":[[1,2],[3,4]]}}]}"#;
        let (e, s) = err_text(parse_geojson(wrong_len, "j"));
        assert!(matches!(e, TraceError::GeoJson { .. }), "{e:?}");
        assert!(
            s.contains("features[0].properties.coordTimes: 1 times for 2 coordinates"),
            "{s}"
        );

        let bad_lat = r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"times":[1,2]},"geometry":{"type":"LineString","coordinates":[[1,2],[3,95]]}}]}"#;
        let (_, s) = err_text(parse_geojson(bad_lat, "j"));
        assert!(
            s.starts_with("features[0].geometry.coordinates[1]: bad coordinate: lat 95"),
            "{s}"
        );
        let t = parse_geojson_with(bad_lat, "j", &ReadOptions::lenient()).unwrap();
        assert_eq!(t[0].len(), 1);

        let bad_time = r#"{"type":"Feature","properties":{"coordTimes":["later"]},"geometry":{"type":"LineString","coordinates":[[1,2]]}}"#;
        let (e, s) = err_text(parse_geojson(bad_time, "j"));
        assert!(matches!(e, TraceError::BadTime { .. }), "{e:?}");
        assert!(
            s.starts_with("$.properties.coordTimes[0]: bad time \"later\""),
            "{s}"
        );

        let untimed_point = r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[1,2]}}]}"#;
        let (e, _) = err_text(parse_geojson(untimed_point, "j"));
        assert!(matches!(e, TraceError::MissingTime { .. }), "{e:?}");

        let (e, _) = err_text(parse_geojson("{\"type\":\n\"Feature\",", "j"));
        assert!(matches!(e, TraceError::Json { line: 2, .. }), "{e:?}");
        assert!(matches!(parse_geojson("  \n", "j"), Err(TraceError::Empty)));
        assert!(matches!(
            parse_geojson(r#"{"type":"FeatureCollection","features":[]}"#, "j"),
            Err(TraceError::Empty)
        ));
        assert!(matches!(
            parse_geojson(r#"{"type":"Topology"}"#, "j"),
            Err(TraceError::GeoJson { .. })
        ));
    }

    // ---- files -------------------------------------------------------------------------------

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn read_traces_by_extension_with_gzip_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        };
        let plain = read_traces(&write("day1.csv", GEOLIFE_CSV.as_bytes()), None).unwrap();
        let zipped = read_traces(&write("day1.txt.gz", &gz(GEOLIFE_CSV.as_bytes())), None).unwrap();
        assert_eq!(plain, zipped);
        assert_eq!(plain[0].id, "day1/001");
        let gpx = read_traces(&write("run.GPX.gz", &gz(GPX_MULTI.as_bytes())), None).unwrap();
        assert_eq!(gpx[0].id, "run/trk1/seg1");
        // Gzip is detected from the content, whatever the name; an explicit format wins.
        let odd = write("odd.dat", &gz(GEOLIFE_CSV.as_bytes()));
        let t = read_traces(&odd, Some(TraceFormat::Csv(CsvMapping::geolife()))).unwrap();
        assert_eq!(
            t,
            plain
                .iter()
                .map(|t| Trace {
                    id: t.id.replace("day1", "odd"),
                    ..t.clone()
                })
                .collect::<Vec<_>>()
        );
        let (e, s) = err_text(read_traces(&odd, None));
        assert!(
            matches!(e, TraceError::File { ref error, .. } if matches!(**error, TraceError::UnknownFormat(_))),
            "{e:?}"
        );
        assert!(s.contains("odd.dat"), "{s}");
        // Errors name the file.
        let bad = write(
            "bad.csv",
            b"lat,lng,datetime,uid\nx,1,2024-05-06 08:00:00,a\n",
        );
        let (_, s) = err_text(read_traces(&bad, None));
        assert!(s.contains("bad.csv: line 2: bad coordinate"), "{s}");
        let (_, s) = err_text(read_traces(&write("cols.csv", b"a,b\n1,2\n"), None));
        assert!(s.contains("no lat/lon/time columns recognised"), "{s}");
        let (e, _) = err_text(read_traces(&dir.path().join("missing.gpx"), None));
        assert!(
            matches!(e, TraceError::File { ref error, .. } if matches!(**error, TraceError::Io(_))),
            "{e:?}"
        );
        let (e, _) = err_text(read_traces(&write("empty.geojson", b""), None));
        assert!(
            matches!(e, TraceError::File { ref error, .. } if matches!(**error, TraceError::Empty)),
            "{e:?}"
        );
        // A truncated gzip stream is an I/O error, not silent truncation.
        let z = gz(GEOLIFE_CSV.as_bytes());
        let (e, _) = err_text(read_traces(&write("cut.csv.gz", &z[..z.len() / 2]), None));
        assert!(
            matches!(e, TraceError::File { ref error, .. } if matches!(**error, TraceError::Io(_))),
            "{e:?}"
        );
    }

    #[test]
    fn fixtures_in_the_repo() {
        let gpx = read_traces(&fixture("tiny.gpx"), None).unwrap();
        let summary: Vec<_> = gpx.iter().map(|t| (t.id.as_str(), t.len())).collect();
        assert_eq!(
            summary,
            [
                ("tiny/trk1/seg1", 3),
                ("tiny/trk1/seg2", 2),
                ("tiny/rte1", 2)
            ]
        );
        assert_eq!(gpx[0].start_ms(), Some(T0));
        assert_eq!(gpx[0].points[0].accuracy_m, Some(1.2 * HDOP_TO_METERS));
        let csv = read_traces(&fixture("tiny.csv"), None).unwrap();
        let summary: Vec<_> = csv.iter().map(|t| (t.id.as_str(), t.len())).collect();
        assert_eq!(summary, [("tiny/d1", 3), ("tiny/d2", 2)]);
        assert_eq!(
            csv[0].points,
            gpx[0]
                .points
                .iter()
                .map(|p| TracePoint::new(p.t_ms, p.lat, p.lon))
                .collect::<Vec<_>>()
        );
        let json = read_traces(&fixture("tiny.geojson"), None).unwrap();
        assert_eq!(json.len(), 1);
        assert_eq!(
            json[0].points,
            gpx[0]
                .points
                .iter()
                .map(|p| TracePoint {
                    accuracy_m: None,
                    ..*p
                })
                .collect::<Vec<_>>()
        );
    }

    // ---- shift -------------------------------------------------------------------------------

    #[test]
    fn shift_moves_time_and_space() {
        let t = Trace::new(
            "a",
            vec![
                TracePoint {
                    speed_mps: Some(3.0),
                    ..TracePoint::new(T0, 89.5, 179.5)
                },
                TracePoint::new(T0 + 1000, -10.0, -179.5),
            ],
        );
        let s = shift(&t, 60_000, 1.0, 1.0);
        assert_eq!(s.id, "a");
        assert_eq!(s.points[0].t_ms, T0 + 60_000);
        assert_eq!(s.points[0].lat, 90.0);
        assert!((s.points[0].lon - -179.5).abs() < 1e-9);
        assert_eq!(s.points[0].speed_mps, Some(3.0));
        assert!((s.points[1].lat - -9.0).abs() < 1e-9 && (s.points[1].lon - -178.5).abs() < 1e-9);
        let back = shift(&t, -1000, -100.0, -1.0);
        assert_eq!(back.points[1].lat, -90.0);
        assert!((back.points[1].lon - 179.5).abs() < 1e-9);
        assert_eq!(shift(&t, i64::MAX, 0.0, 0.0).points[1].t_ms, i64::MAX);
        assert_eq!(t.duration_ms(), 1000);
    }

    // ---- real recorded data (skipped when ../shared/data is absent) --------------------------

    #[test]
    fn real_geolife_sample() {
        let Some(path) = shared("geolife_sample/geolife_sample.txt.gz") else {
            return;
        };
        for format in [None, Some(TraceFormat::Csv(CsvMapping::geolife()))] {
            let t = read_traces(&path, format).unwrap();
            let ids: Vec<_> = t.iter().map(|t| t.id.as_str()).collect();
            assert_eq!(ids, ["geolife_sample/001", "geolife_sample/005"]);
            assert_eq!(t.iter().map(Trace::len).sum::<usize>(), 217_653);
            assert_eq!((t[0].len(), t[1].len()), (108_607, 109_046));
            for tr in &t {
                assert!(tr.points.windows(2).all(|w| w[0].t_ms <= w[1].t_ms));
            }
            // 2008-10-23 05:53:05 UTC
            assert_eq!(
                t[0].points.iter().map(|p| p.t_ms).min(),
                Some(1_224_741_185_000)
            );
        }
    }

    #[test]
    fn real_wmata_gtfs_rt() {
        let Some(path) = shared("wmata_bus_C53/vehicle_positions_2026-02-16.csv") else {
            return;
        };
        for format in [None, Some(TraceFormat::Csv(CsvMapping::gtfs_rt()))] {
            let t = read_traces(&path, format).unwrap();
            assert_eq!(t.len(), 64, "one trace per trip");
            assert_eq!(t.iter().map(Trace::len).sum::<usize>(), 11_024);
            let all = || t.iter().flat_map(|t| &t.points);
            assert_eq!(all().filter(|p| p.heading_deg.is_none()).count(), 4_506);
            assert!(all().all(|p| p.speed_mps.is_some()));
            assert!(all().all(|p| (38.0..40.0).contains(&p.lat) && (-78.0..-76.0).contains(&p.lon)));
            assert!(t[0].id.starts_with("vehicle_positions_2026-02-16/"));
        }
    }

    #[test]
    fn real_gpx_tracks() {
        let Some(dir) = shared("gpxpy_real_tracks") else {
            return;
        };
        let car = read_traces(&dir.join("around-visnjan-with-car.gpx"), None).unwrap();
        assert_eq!(
            (car.len(), car[0].id.as_str(), car[0].len()),
            (1, "around-visnjan-with-car", 104)
        );
        assert!(car[0].points.iter().all(|p| p.altitude_m.is_some()));
        let lake = read_traces(&dir.join("cerknicko-jezero.gpx"), None).unwrap();
        assert_eq!(lake.len(), 7);
        assert_eq!(lake.iter().map(Trace::len).sum::<usize>(), 296);
        // korita-zbevnica has a 358-point track without any <time>: strict fails, lenient skips it.
        let korita = dir.join("korita-zbevnica.gpx");
        let (e, s) = err_text(read_traces(&korita, None));
        assert!(
            matches!(e, TraceError::File { ref error, .. } if matches!(**error, TraceError::MissingTime { .. })),
            "{e:?}"
        );
        assert!(s.contains("korita-zbevnica.gpx: line "), "{s}");
        let t = read_traces_with(&korita, None, &ReadOptions::lenient()).unwrap();
        assert_eq!(
            t.iter()
                .map(|t| (t.id.as_str(), t.len()))
                .collect::<Vec<_>>(),
            [
                ("korita-zbevnica/trk3/seg1", 176),
                ("korita-zbevnica/trk4/seg1", 337)
            ]
        );
    }
}
