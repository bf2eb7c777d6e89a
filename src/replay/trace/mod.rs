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
//! - `mod.rs` (this file): the list of formats ([`TraceFormat`], the one place a format is
//!   registered) and the file entry points (format by extension, gzip).
//! - `model.rs`: the shared types ([`Trace`], [`TracePoint`], [`TraceError`], [`Location`],
//!   [`ReadOptions`]) and [`shift`]; every reader builds on it, and it imports none of them.
//! - `gpx.rs`, `csv.rs`, `geojson.rs`: one reader per format; `csv_mapping.rs`: which CSV column
//!   holds what ([`CsvMapping`], its presets and header detection).
//! - `time.rs`: [`TimeFormat`] and the time parsers.
//! - `points.rs`: what every reader shares: checking points, counting the ones skipped under
//!   [`ReadOptions`], grouping them into named traces.
//! - `tests.rs`: tests of the entry points; `test_support.rs`: the samples the readers' tests
//!   share.
//!
//! # Adding a format
//! Write `<format>.rs` with a `parse_<format>_with(input, id, opts)` built on `points.rs` (as
//! `gpx.rs` is) and its tests in a `mod tests` at its end, re-export it below, and register it
//! in the "Formats" section of this file: a [`TraceFormat`] variant, its `--format` name in
//! `from_str`, its arm in `TraceFormat::read` (the compiler asks for that one) and its file
//! extensions in `ReadAs::for_extension`.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::str::FromStr;

use flate2::read::MultiGzDecoder;

mod csv;
mod csv_mapping;
mod geojson;
mod gpx;
mod model;
mod points;
mod time;

pub use self::csv::{parse_csv, parse_csv_with};
pub use self::csv_mapping::{Column, CsvMapping};
pub use self::geojson::{parse_geojson, parse_geojson_with};
pub use self::gpx::{parse_gpx, parse_gpx_with, HDOP_TO_METERS};
pub use self::model::{shift, Location, ReadOptions, Trace, TraceError, TracePoint};
pub use self::time::TimeFormat;

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
mod test_support;
#[cfg(test)]
mod tests;
