//! An analytics report: route facts grouped by any of carrier, depot, driver and local day,
//! each group's [`Figures`], and the whole period's; as JSON or as CSV (one line per group,
//! the same columns every time).

use std::collections::BTreeMap;

use milepost_core::analytics::{horizon_label, Figures, RouteFacts, Summary, HORIZONS};
use milepost_core::fleet::ndr::reason_name;
use milepost_proto::route::FailureReason;
use serde::Serialize;

/// A dimension to group by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Dim {
    /// The carrier owning the depot.
    Carrier,
    /// The depot.
    Depot,
    /// The driver.
    Driver,
    /// The local day of the route's planned start, in the carrier's time zone.
    Day,
}

impl Dim {
    /// Parses a comma-separated list: `carrier,depot,day`.
    pub fn parse_list(s: &str) -> Result<Vec<Dim>, String> {
        let mut v = Vec::new();
        for p in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let d = match p {
                "carrier" => Dim::Carrier,
                "depot" => Dim::Depot,
                "driver" => Dim::Driver,
                "day" => Dim::Day,
                other => {
                    return Err(format!(
                        "unknown dimension {other:?}: use carrier, depot, driver or day"
                    ))
                }
            };
            if !v.contains(&d) {
                v.push(d);
            }
        }
        v.sort();
        Ok(v)
    }
}

/// One route's facts with what groups it: its carrier and local day.
#[derive(Clone, Debug)]
pub struct Placed {
    /// The carrier.
    pub carrier: String,
    /// The local day, `YYYY-MM-DD`.
    pub day: String,
    /// The facts.
    pub facts: RouteFacts,
}

/// One group of a report.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Row {
    /// The carrier, when grouping by carrier.
    pub carrier: Option<String>,
    /// The depot, when grouping by depot.
    pub depot: Option<String>,
    /// The driver, when grouping by driver.
    pub driver: Option<String>,
    /// The day, when grouping by day.
    pub day: Option<String>,
    /// Its figures.
    pub figures: Figures,
}

/// A report.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Report {
    /// First local day, `YYYY-MM-DD`.
    pub from: String,
    /// Last local day.
    pub to: String,
    /// What the rows group by.
    pub by: Vec<Dim>,
    /// The groups, in key order.
    pub rows: Vec<Row>,
    /// Every route of the report together.
    pub total: Figures,
}

type Key = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Groups `routes` by `by`.
pub fn build(from: &str, to: &str, by: &[Dim], routes: &[Placed]) -> Report {
    let mut groups: BTreeMap<Key, Summary> = BTreeMap::new();
    let mut total = Summary::default();
    for p in routes {
        let pick = |d: Dim, v: &str| by.contains(&d).then(|| v.to_owned());
        let key = (
            pick(Dim::Carrier, &p.carrier),
            pick(Dim::Depot, &p.facts.depot.0),
            pick(Dim::Driver, &p.facts.driver.0),
            pick(Dim::Day, &p.day),
        );
        groups.entry(key).or_default().add(&p.facts);
        total.add(&p.facts);
    }
    Report {
        from: from.to_owned(),
        to: to.to_owned(),
        by: by.to_vec(),
        rows: groups
            .into_iter()
            .map(|((carrier, depot, driver, day), s)| Row {
                carrier,
                depot,
                driver,
                day,
                figures: s.figures(),
            })
            .collect(),
        total: total.figures(),
    }
}

/// The CSV columns, in order.
pub fn csv_header() -> Vec<String> {
    let mut h: Vec<String> = [
        "carrier",
        "depot",
        "driver",
        "day",
        "routes",
        "stops",
        "stops_served",
        "parcels",
        "delivered",
        "failed",
        "stops_with_window",
        "on_time_rate",
        "early",
        "late",
        "first_attempts",
        "first_attempt_rate",
        "stop_time_avg_s",
        "stop_time_p90_s",
        "stops_per_hour",
        "distance_km",
        "stalls",
        "late_alerts",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    h.extend(
        FailureReason::ALL
            .iter()
            .map(|r| format!("failed_{}", reason_name(*r))),
    );
    for b in 0..HORIZONS.len() {
        let l = horizon_label(b).replace('-', "_");
        h.push(format!("eta_n_{l}"));
        h.push(format!("eta_mae_s_{l}"));
        h.push(format!("eta_bias_s_{l}"));
    }
    h
}

fn opt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.4}")).unwrap_or_default()
}

fn csv_record(r: &Row) -> Vec<String> {
    let f = &r.figures;
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    let mut rec = vec![
        s(&r.carrier),
        s(&r.depot),
        s(&r.driver),
        s(&r.day),
        f.routes.to_string(),
        f.stops.to_string(),
        f.stops_served.to_string(),
        f.parcels.to_string(),
        f.delivered.to_string(),
        f.failed.to_string(),
        f.stops_with_window.to_string(),
        opt(f.on_time_rate),
        f.early.to_string(),
        f.late.to_string(),
        f.first_attempts.to_string(),
        opt(f.first_attempt_rate),
        opt(f.stop_time_avg_s),
        opt(f.stop_time_p90_s),
        opt(f.stops_per_hour),
        format!("{:.3}", f.distance_km),
        f.stalls.to_string(),
        f.late_alerts.to_string(),
    ];
    rec.extend(FailureReason::ALL.iter().map(|r| {
        f.failed_by_reason
            .get(reason_name(*r))
            .copied()
            .unwrap_or(0)
            .to_string()
    }));
    for h in &f.eta {
        rec.push(h.n.to_string());
        rec.push(opt(h.mae_s));
        rec.push(opt(h.bias_s));
    }
    rec
}

/// The report as CSV: a header, then one line per row (the total is not a line: sum the rows,
/// or ask without grouping).
pub fn to_csv(report: &Report) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(csv_header())?;
    for r in &report.rows {
        w.write_record(csv_record(r))?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
