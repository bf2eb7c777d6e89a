//! The GPX reader: GPX 1.0 / 1.1 tracks and routes ([`parse_gpx_with`]), one trace per
//! `<trkseg>` and per `<rte>`.

use std::io::Read;

use quick_xml::events::{BytesStart, Event};

use super::model::{Location, ReadOptions, Trace, TraceError, TracePoint};
use super::points::{check_coord, finish, opt_f32, Rejects};
use super::time::parse_datetime_ms;

/// Metres of horizontal accuracy per unit of GPX `<hdop>`: `accuracy_m = hdop * 5`.
///
/// HDOP is unitless; multiplying it by a typical user-equivalent range error (about 5 m for a
/// consumer receiver) gives a rough 1-sigma horizontal accuracy. Good enough for replay, not for
/// surveying.
pub const HDOP_TO_METERS: f32 = 5.0;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::trace::test_support::{err_text, GPX_MULTI, T0};

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
}
