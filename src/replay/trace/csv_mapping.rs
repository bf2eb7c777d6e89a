//! Which CSV columns hold what: [`Column`] and [`CsvMapping`], with the GeoLife and
//! GTFS-realtime presets, the mapping strings of `--format` ([`CsvMapping::parse`]) and the
//! guess from a header row ([`CsvMapping::detect`]). The rows themselves are read in `csv.rs`.

use std::fmt;
use std::str::FromStr;

use super::model::TraceError;
use super::time::TimeFormat;

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

    pub(super) fn resolve(&self, headers: Option<&csv::StringRecord>) -> Result<usize, TraceError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
