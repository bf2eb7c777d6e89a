//! The samples and helpers the readers' tests share (a GPX document, GeoLife rows, a base
//! time, the error of a read that must fail).

use std::fmt;

use super::model::TraceError;

/// 2024-05-06T08:00:00Z in UTC ms.
pub(crate) const T0: i64 = 1_714_982_400_000;

/// The error of a read that must fail, and its message.
pub(crate) fn err_text<T: fmt::Debug>(r: Result<T, TraceError>) -> (TraceError, String) {
    let e = r.expect_err("expected an error");
    let s = e.to_string();
    (e, s)
}

/// A GPX 1.1 document: metadata, a waypoint, two tracks with empty segments (one self-closing)
/// and a route. The GPX tests read it from memory, the file tests from disk.
pub(crate) const GPX_MULTI: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
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

/// GeoLife-style rows (the sample's header and users): out of order, two at the same time.
pub(crate) const GEOLIFE_CSV: &str = "lat,lng,datetime,uid
39.984094,116.319236,2008-10-23 05:53:05,001
39.984198,116.319322,2008-10-23 05:53:06,001
40.000000,116.300000,2008-10-24 01:00:00,005
39.984224,116.319402,2008-10-23 05:53:01,001
39.984211,116.319389,2008-10-23 05:53:06,001
";
