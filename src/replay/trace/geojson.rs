//! The GeoJSON reader: timed LineStrings, MultiLineStrings, MultiPoints and Points of a
//! FeatureCollection, a Feature or a bare geometry ([`parse_geojson_with`]).

use std::io::Read;

use serde_json::{Map, Value};

use super::model::{Location, ReadOptions, Trace, TraceError, TracePoint};
use super::points::{check_coord, finish, opt_f32, Rejects};
use super::time::{parse_datetime_ms, MAX_ABS_MS};

/// Reads all of `input` as text, then its traces with [`parse_geojson_with`].
pub(super) fn read_geojson(
    mut input: impl Read,
    id: &str,
    opts: &ReadOptions,
) -> Result<Vec<Trace>, TraceError> {
    let mut s = String::new();
    input.read_to_string(&mut s)?;
    parse_geojson_with(&s, id, opts)
}

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
    use crate::replay::trace::test_support::{err_text, T0};

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
}
