//! The CSV reader: rows to traces with a given [`CsvMapping`] ([`parse_csv_with`]), or with the
//! mapping guessed from the header ([`parse_csv_auto`], for files read by extension). Which
//! column holds what is `csv_mapping.rs`.

use std::collections::HashMap;
use std::io::Read;

use super::csv_mapping::{Column, CsvMapping};
use super::model::{Location, ReadOptions, Trace, TraceError, TracePoint};
use super::points::{check_coord, finish, is_blank, opt_f32, Rejects};
use super::time::parse_time;
use super::time::TimeFormat;

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
pub(super) fn parse_csv_auto(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::trace::test_support::{err_text, GEOLIFE_CSV, T0};
    use chrono::NaiveDateTime;

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
}
