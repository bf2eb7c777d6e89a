//! Analytics served by the gateway: the numbers a carrier is judged by, per carrier, depot,
//! driver and local day, from the core's route facts (live routes, from the fold's tally) and
//! the history's (closed routes, stored when they closed). The definitions are the core's
//! ([`milepost_core::analytics`]); this module finds the routes of a period, places them in
//! their carrier and local day ([`crate::tenancy::Carriers`]), and hands them to [`report`] (JSON and
//! CSV), the Prometheus gauges and the Parquet export ([`export`]).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Days, NaiveDate};
use milepost_core::analytics::RouteFacts;
use milepost_proto::route::DepotId;

use crate::history::HistoryError;
use crate::state::{lock, FleetState};

pub mod export;
pub mod gauges;
pub mod report;

use crate::tenancy::Carriers;
pub use report::{Dim, Placed, Report};

/// Which routes a report covers.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only this carrier's depots.
    pub carrier: Option<String>,
    /// Only this depot.
    pub depot: Option<String>,
    /// Only this driver.
    pub driver: Option<String>,
}

/// The local day of `ms` in `tz`.
pub fn local_day(ms: i64, tz: chrono_tz::Tz) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.with_timezone(&tz).format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "0000-00-00".into())
}

/// Every depot the gateway knows: configured, live, or in the history.
pub fn known_depots(
    state: &FleetState,
    carriers: &Carriers,
) -> Result<BTreeSet<DepotId>, HistoryError> {
    let mut depots: BTreeSet<DepotId> = lock(&state.core).depots();
    for c in carriers.0.values() {
        depots.extend(c.depots.iter().map(|d| DepotId(d.clone())));
    }
    if let Some(h) = &state.history {
        depots.extend(h.depots()?);
    }
    Ok(depots)
}

/// The routes planned on local days `from..=to` that `filter` selects, in depots `reads`
/// allows, each placed in its carrier and day. A live route is read from the core (its facts
/// so far), a closed one from the history.
pub fn routes(
    state: &FleetState,
    carriers: &Carriers,
    from: NaiveDate,
    to: NaiveDate,
    filter: &Filter,
    reads: impl Fn(&str) -> bool,
) -> Result<Vec<Placed>, HistoryError> {
    let depots: Vec<DepotId> = match &filter.depot {
        Some(d) => vec![DepotId(d.clone())],
        None => known_depots(state, carriers)?.into_iter().collect(),
    }
    .into_iter()
    .filter(|d| reads(&d.0))
    .filter(|d| {
        filter
            .carrier
            .as_deref()
            .is_none_or(|c| carriers.carrier_of(&d.0) == c)
    })
    .collect();
    routes_in(state, carriers, &depots, from, to, filter.driver.as_deref())
}

/// The routes of `depots` planned on local days `from..=to` (of `driver` only, if given), each
/// placed in its carrier and day.
pub fn routes_in(
    state: &FleetState,
    carriers: &Carriers,
    depots: &[DepotId],
    from: NaiveDate,
    to: NaiveDate,
    driver: Option<&str>,
) -> Result<Vec<Placed>, HistoryError> {
    // Local days span UTC days on either side.
    let utc_from = day_of_date(from.checked_sub_days(Days::new(1)).unwrap_or(from));
    let utc_to = day_of_date(to.checked_add_days(Days::new(1)).unwrap_or(to));
    let (from_s, to_s) = (day_of_date(from), day_of_date(to));
    // By id and planned start: a live route that reuses a closed one's id (another day) is
    // another route.
    let mut by_id: BTreeMap<(String, i64), RouteFacts> = BTreeMap::new();
    for depot in depots {
        if let Some(h) = &state.history {
            for f in h.facts(depot, &utc_from, &utc_to)? {
                by_id.insert((f.route_id.0.clone(), f.planned_start_ms), f);
            }
        }
        let core = lock(&state.core);
        for id in core.routes_of_depot(depot) {
            if let Some(f) = core.route_facts(&id) {
                // Live wins over a closed route of the same id and start (closed meanwhile).
                by_id.insert((f.route_id.0.clone(), f.planned_start_ms), f);
            }
        }
    }
    Ok(by_id
        .into_values()
        .filter(|f| driver.is_none_or(|d| f.driver.0 == d))
        .filter_map(|f| {
            let carrier = carriers.carrier_of(&f.depot.0).to_owned();
            let day = local_day(f.planned_start_ms, carriers.tz(&carrier));
            (day >= from_s && day <= to_s).then_some(Placed {
                carrier,
                day,
                facts: f,
            })
        })
        .collect())
}

fn day_of_date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// Today's local day of `carrier` at `now_ms`, as a date.
pub fn today(carriers: &Carriers, carrier: &str, now_ms: i64) -> NaiveDate {
    let day = local_day(now_ms, carriers.tz(carrier));
    NaiveDate::parse_from_str(&day, "%Y-%m-%d").unwrap_or_default()
}
