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
//!
//! # The folder
//! - `mod.rs` (this file): the shared types ([`Trace`], [`TracePoint`], [`TraceError`],
//!   [`Location`], [`ReadOptions`]), [`shift`], the list of formats ([`TraceFormat`]) and the file
//!   entry points (format by extension, gzip).
//! - `gpx.rs`, `csv.rs`, `geojson.rs`: one reader per format; `csv_mapping.rs`: which CSV column
//!   holds what ([`CsvMapping`], its presets and header detection).
//! - `time.rs`: [`TimeFormat`] and the time parsers.
//! - `points.rs`: what every reader shares: checking points, counting the ones skipped under
//!   [`ReadOptions`], grouping them into named traces.
//! - `tests.rs`: tests of the entry points, and the samples the readers' tests share.
//!
//! # Adding a format
//! Write `<format>.rs` with a `parse_<format>_with(input, id, opts)` built on `points.rs` (as
//! `gpx.rs` is) and its tests in a `mod tests` at its end, re-export it below, and register it
//! in the "Formats" section of this file: a [`TraceFormat`] variant, its `--format` name in
//! `from_str`, its arm in `TraceFormat::read` (the compiler asks for that one) and its file
//! extensions in `ReadAs::for_extension`.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use flate2::read::MultiGzDecoder;

mod csv;
mod csv_mapping;
mod geojson;
mod gpx;
mod points;
mod time;

pub use self::csv::{parse_csv, parse_csv_with};
pub use self::csv_mapping::{Column, CsvMapping};
pub use self::geojson::{parse_geojson, parse_geojson_with};
pub use self::gpx::{parse_gpx, parse_gpx_with, HDOP_TO_METERS};
pub use self::time::TimeFormat;

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

// ---------------------------------------------------------------------------------------------
// Formats: where a trace format is registered
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

impl TraceFormat {
    /// Reads every trace in `input` in this format, with `id` as the base trace id.
    fn read(
        &self,
        input: impl Read,
        id: &str,
        opts: &ReadOptions,
    ) -> Result<Vec<Trace>, TraceError> {
        match self {
            TraceFormat::Gpx => gpx::parse_gpx_with(input, id, opts),
            TraceFormat::Csv(mapping) => csv::parse_csv_with(input, mapping, id, opts),
            TraceFormat::GeoJson => geojson::read_geojson(input, id, opts),
        }
    }
}

/// How a file is read: in a format given or implied by its extension, or as CSV with the
/// columns detected from the header row.
#[allow(clippy::large_enum_variant)] // made once per file, like `TraceFormat`
enum ReadAs {
    /// In this format.
    Format(TraceFormat),
    /// As CSV with this delimiter, the mapping from [`CsvMapping::detect`].
    CsvDetect {
        /// Field delimiter.
        delimiter: u8,
    },
}

impl ReadAs {
    /// What a file extension (lowercase, a trailing `.gz` removed) stands for, `None` if unknown.
    fn for_extension(ext: &str) -> Option<ReadAs> {
        Some(match ext {
            "gpx" => ReadAs::Format(TraceFormat::Gpx),
            "geojson" | "json" => ReadAs::Format(TraceFormat::GeoJson),
            "csv" | "txt" => ReadAs::CsvDetect { delimiter: b',' },
            "tsv" => ReadAs::CsvDetect { delimiter: b'\t' },
            _ => return None,
        })
    }

    /// Reads every trace in `input`, with `id` as the base trace id.
    fn read(
        self,
        input: impl Read,
        id: &str,
        opts: &ReadOptions,
    ) -> Result<Vec<Trace>, TraceError> {
        match self {
            ReadAs::Format(format) => format.read(input, id, opts),
            ReadAs::CsvDetect { delimiter } => csv::parse_csv_auto(input, delimiter, id, opts),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

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
    let read_as = match format {
        Some(f) => ReadAs::Format(f),
        None => ReadAs::for_extension(&ext).ok_or_else(|| {
            TraceError::UnknownFormat(format!(
                "cannot tell the format of {:?} from its extension (expected .gpx, .csv, \
                 .txt, .tsv, .geojson or .json, optionally followed by .gz); give a format",
                path.file_name().unwrap_or_default()
            ))
        })?,
    };
    read_as.read(open(path)?, &base, opts)
}

/// Opens the file at `path`, gunzipped when it starts with the gzip magic bytes.
fn open(path: &Path) -> io::Result<Box<dyn BufRead>> {
    let mut file = BufReader::with_capacity(1 << 16, File::open(path)?);
    let gz = file.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gz {
        Box::new(BufReader::with_capacity(1 << 16, MultiGzDecoder::new(file)))
    } else {
        Box::new(file)
    })
}

#[cfg(test)]
mod tests;
