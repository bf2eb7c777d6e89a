//! Tests of the entry points (format strings, files by extension, gzip, the repo's fixtures,
//! real recorded data, [`shift`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::test_support::*;
use super::*;

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
