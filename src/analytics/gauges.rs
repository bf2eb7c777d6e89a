//! Today's figures as Prometheus gauges, per carrier and depot (each carrier's today, in its
//! time zone): bounded label sets, no drivers, no days.

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::NaiveDate;
use milepost_core::analytics::{horizon_label, HORIZONS};
use milepost_core::fleet::ndr::reason_name;
use milepost_proto::route::{DepotId, FailureReason};

use super::report::{build, Dim, Row};
use super::{known_depots, routes_in, today};
use crate::state::FleetState;
use crate::tenancy::Carriers;

/// A gauge of one row: name, help, value.
type Gauge = (&'static str, &'static str, fn(&Row) -> Option<f64>);

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn head(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
}

fn line(out: &mut String, name: &str, r: &Row, extra: &str, v: f64) {
    let carrier = escape(r.carrier.as_deref().unwrap_or_default());
    let depot = escape(r.depot.as_deref().unwrap_or_default());
    let _ = writeln!(
        out,
        "{name}{{carrier=\"{carrier}\",depot=\"{depot}\"{extra}}} {v}"
    );
}

/// Renders the gauges of today's routes into `out`. A history read that fails leaves them out
/// (and says so in the gateway's log): the rest of `/metrics` still answers.
pub fn render(state: &FleetState, carriers: &Carriers, now_ms: i64, out: &mut String) {
    let rows = match today_rows(state, carriers, now_ms) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "analytics gauges left out");
            return;
        }
    };
    let gauges: [Gauge; 4] = [
        ("milepost_analytics_routes", "Routes planned today", |r| {
            Some(f64::from(r.figures.routes))
        }),
        (
            "milepost_analytics_on_time_ratio",
            "Share of today's reached stops with a window reached inside it",
            |r| r.figures.on_time_rate,
        ),
        (
            "milepost_analytics_first_attempt_ratio",
            "Share of today's first attempts that delivered",
            |r| r.figures.first_attempt_rate,
        ),
        (
            "milepost_analytics_stop_time_p90_seconds",
            "90th percentile of today's time at a stop",
            |r| r.figures.stop_time_p90_s,
        ),
    ];
    for (name, help, value) in gauges {
        head(out, name, help);
        for r in &rows {
            if let Some(v) = value(r) {
                line(out, name, r, "", v);
            }
        }
    }
    let name = "milepost_analytics_failed_attempts";
    head(out, name, "Today's failed attempts, by reason");
    for r in &rows {
        for reason in FailureReason::ALL.map(reason_name) {
            let n = r.figures.failed_by_reason.get(reason).copied().unwrap_or(0);
            line(out, name, r, &format!(",reason=\"{reason}\""), f64::from(n));
        }
    }
    let name = "milepost_analytics_eta_mae_seconds";
    head(
        out,
        name,
        "Mean absolute error of the ETAs recipients were shown today, by stops ahead",
    );
    for r in &rows {
        for (b, h) in r.figures.eta.iter().enumerate().take(HORIZONS.len()) {
            if let Some(v) = h.mae_s {
                let label = format!(",horizon=\"{}\"", horizon_label(b));
                line(out, name, r, &label, v);
            }
        }
    }
}

/// One row per carrier and depot with routes today (each carrier's today).
fn today_rows(
    state: &FleetState,
    carriers: &Carriers,
    now_ms: i64,
) -> Result<Vec<Row>, crate::history::HistoryError> {
    let mut by_carrier: BTreeMap<&str, Vec<DepotId>> = BTreeMap::new();
    for d in known_depots(state, carriers)? {
        by_carrier
            .entry(carriers.carrier_of(&d.0))
            .or_default()
            .push(d);
    }
    let mut rows = Vec::new();
    for (carrier, depots) in by_carrier {
        let day: NaiveDate = today(carriers, carrier, now_ms);
        let placed = routes_in(state, carriers, &depots, day, day, None)?;
        let d = day.format("%Y-%m-%d").to_string();
        rows.extend(build(&d, &d, &[Dim::Carrier, Dim::Depot], &placed).rows);
    }
    Ok(rows)
}
