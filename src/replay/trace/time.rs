//! Time parsing, shared by the readers: [`TimeFormat`] (how a CSV time column is written), the
//! date-time parser GPX and GeoJSON use, and the Unix-time bounds. Every time comes out as UTC
//! milliseconds since the Unix epoch.

use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime};

use super::model::TraceError;

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
pub(super) fn parse_datetime_ms(s: &str) -> Result<i64, String> {
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
pub(super) const MAX_ABS_MS: f64 = 8.0e15;

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
pub(super) fn parse_time(s: &str, fmt: &TimeFormat) -> Result<i64, String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::trace::test_support::T0;

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
}
