//! What every reader uses to turn raw fields into checked [`TracePoint`]s and named [`Trace`]s:
//! the [`ReadOptions`] bookkeeping of skipped points ([`Rejects`]), the coordinate and optional
//! value checks, and [`finish`], which groups, sorts and names the traces.

use super::model::{Location, ReadOptions, Trace, TraceError, TracePoint};

/// Counts points skipped under [`ReadOptions`] and fails when the options say so.
pub(super) struct Rejects<'a> {
    opts: &'a ReadOptions,
    untimed: usize,
    invalid: usize,
    first: Option<String>,
}

impl<'a> Rejects<'a> {
    pub(super) fn new(opts: &'a ReadOptions) -> Self {
        Rejects {
            opts,
            untimed: 0,
            invalid: 0,
            first: None,
        }
    }

    /// `Ok` when the point may be skipped, else the error back.
    pub(super) fn reject(&mut self, e: TraceError) -> Result<(), TraceError> {
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

    pub(super) fn report(&self, id: &str) {
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
pub(super) fn finish(
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

pub(super) fn check_coord(lat: f64, lon: f64) -> Result<(), String> {
    if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
        return Err(format!("lat {lat} is not in [-90, 90]"));
    }
    if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
        return Err(format!("lon {lon} is not in [-180, 180]"));
    }
    Ok(())
}

/// True for cells that mean "no value": empty, `NA`, `NaN`, `null`, `None`.
pub(super) fn is_blank(s: &str) -> bool {
    s.is_empty()
        || ["na", "nan", "null", "none"]
            .iter()
            .any(|b| s.eq_ignore_ascii_case(b))
}

/// An optional numeric field: blank is `None`, anything else must be a finite number.
pub(super) fn opt_f32(
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
