//! `/api/v1/analytics` (the numbers a carrier is judged by, grouped, as JSON or CSV) and
//! `/api/v1/exports/{carrier}/{day}/{table}.parquet` (a day's closed routes for BI tools). Both
//! only ever read the depots the caller's scopes cover: another carrier's depots are not in
//! the sums, the rows or the files, not even as a count.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::analytics::export::{export_day, TABLES};
use crate::analytics::report::{build, to_csv, Dim};
use crate::analytics::{known_depots, routes, Filter, Report};
use crate::web::api::caller::Caller;
use crate::web::api::error::ApiError;
use crate::web::api::extract::{ApiPath, ApiQuery};
use crate::web::respond::json;
use crate::web::state::WebState;

/// Longest period of one report, days.
pub const MAX_DAYS: i64 = 366;

/// The query of a report.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnalyticsQuery {
    /// First local day, `YYYY-MM-DD` (default: today, in the time zone of `carrier`, or of
    /// `depot`'s carrier; UTC when neither is given).
    pub from: Option<String>,
    /// Last local day, `YYYY-MM-DD` (default: `from`); at most 366 days after `from`.
    pub to: Option<String>,
    /// Only this carrier's depots.
    pub carrier: Option<String>,
    /// Only this depot.
    pub depot: Option<String>,
    /// Only this driver.
    pub driver: Option<String>,
    /// Group by, comma-separated: `carrier`, `depot`, `driver`, `day` (default
    /// `carrier,depot,day`; empty: one row for everything).
    pub by: Option<String>,
    /// `json` (the default) or `csv`.
    pub format: Option<String>,
}

/// The carrier must be known and the caller's: a platform key that reads every depot learns
/// that a carrier does not exist (404); any other key gets 403 for a carrier that is not its
/// own (a carrier's key) or that it has no depot of (a platform key), known or not, so that
/// carriers' ids are not learned by trying.
fn check_carrier(st: &WebState, caller: &Caller, carrier: &str) -> Result<(), ApiError> {
    let carriers = &st.shared.cfg.carriers;
    if caller.reads_every_depot() {
        return if carriers.knows(carrier) {
            Ok(())
        } else {
            Err(ApiError::not_found(format!("no carrier {carrier:?}")).field("carrier"))
        };
    }
    let reader = |s: &crate::apikeys::Scope| s.role != crate::apikeys::KeyRole::Shipper;
    let own = match caller.tenant.carrier() {
        Some(mine) => mine == carrier && caller.scopes.iter().any(reader),
        None => caller
            .scopes
            .iter()
            .any(|s| reader(s) && carriers.carrier_of(&s.depot) == carrier),
    };
    if own && carriers.knows(carrier) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!("no scope for carrier {carrier}")).field("carrier"))
    }
}

fn date(s: &str, field: &'static str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| ApiError::bad_request(format!("{field} must be YYYY-MM-DD")).field(field))
}

/// Numbers of a period
///
/// On-time rate against the promised window, first-attempt success, failed attempts by
/// reason, time per stop (mean, p90), stops per hour, distance, stalls and late alerts, and
/// the accuracy of the ETAs recipients were shown by stops ahead; per carrier, depot, driver
/// and local day (`by`), for the depots the caller may read. Live routes count with their
/// figures so far. `format=csv` gives one line per row.
#[utoipa::path(
    get,
    path = "/api/v1/analytics",
    tag = "analytics",
    params(AnalyticsQuery),
    responses((status = 200, description = "The report",
        content((Report = "application/json"), (String = "text/csv"))))
)]
pub async fn get_analytics(
    State(st): State<Arc<WebState>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AnalyticsQuery>,
) -> Result<Response, ApiError> {
    let carriers = &st.shared.cfg.carriers;
    if let Some(c) = &q.carrier {
        check_carrier(&st, &caller, c)?;
    }
    if let Some(d) = &q.depot {
        if !caller.reads(d) {
            return Err(ApiError::forbidden(format!("no scope for depot {d}")).field("depot"));
        }
    }
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::bad_request("format is json or csv").field("format")),
    };
    let by = match &q.by {
        Some(b) => Dim::parse_list(b).map_err(|e| ApiError::bad_request(e).field("by"))?,
        None => vec![Dim::Carrier, Dim::Depot, Dim::Day],
    };
    let zone_of = q
        .carrier
        .clone()
        .or_else(|| q.depot.as_ref().map(|d| carriers.carrier_of(d).to_owned()))
        .or_else(|| caller.tenant.carrier().map(str::to_owned))
        .unwrap_or_else(|| crate::tenancy::DEFAULT_CARRIER.to_owned());
    let from = match &q.from {
        Some(f) => date(f, "from")?,
        None => crate::analytics::today(carriers, &zone_of, st.shared.now_ms()),
    };
    let to = match &q.to {
        Some(t) => date(t, "to")?,
        None => from,
    };
    if to < from || (to - from).num_days() >= MAX_DAYS {
        return Err(ApiError::bad_request(format!(
            "to must be on or after from, at most {MAX_DAYS} days in all"
        ))
        .field("to"));
    }
    let filter = Filter {
        carrier: q.carrier.clone(),
        depot: q.depot.clone(),
        driver: q.driver.clone(),
    };
    let st2 = st.clone();
    let placed = tokio::task::spawn_blocking(move || {
        routes(
            &st2.shared.state,
            &st2.shared.cfg.carriers,
            from,
            to,
            &filter,
            |d| caller.reads(d),
        )
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::internal(e.to_string()))?;
    let day = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
    let report = build(&day(from), &day(to), &by, &placed);
    if csv {
        let text = to_csv(&report).map_err(|e| ApiError::internal(e.to_string()))?;
        return Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], text).into_response());
    }
    Ok(json(report))
}

/// A day's export
///
/// A carrier's closed (archived or cancelled) routes planned on a local day, as Parquet:
/// `routes`, `stops` or `parcel_events` (`docs/ANALYTICS.md` has the schema). Only the depots
/// the caller may read are in it; a day with no routes is a file with the schema and no rows.
#[utoipa::path(
    get,
    path = "/api/v1/exports/{carrier}/{day}/{file}",
    tag = "analytics",
    params(
        ("carrier" = String, Path, description = "Carrier id (`default` for depots no carrier lists)"),
        ("day" = String, Path, description = "Local day, YYYY-MM-DD"),
        ("file" = String, Path, description = "`routes.parquet`, `stops.parquet` or `parcel_events.parquet`"),
    ),
    responses((status = 200, description = "The Parquet file",
        content((Vec<u8> = "application/vnd.apache.parquet"))))
)]
pub async fn get_export(
    State(st): State<Arc<WebState>>,
    ApiPath((carrier, day, file)): ApiPath<(String, String, String)>,
    caller: Caller,
) -> Result<Response, ApiError> {
    check_carrier(&st, &caller, &carrier)?;
    let day = date(&day, "day")?;
    let table = file
        .strip_suffix(".parquet")
        .and_then(|t| TABLES.iter().find(|x| **x == t))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no such export file {file:?}: routes.parquet, stops.parquet or parcel_events.parquet"
            ))
        })?;
    let Some(history) = st.shared.state.history.clone() else {
        return Err(ApiError::not_found(
            "this gateway keeps no history to export",
        ));
    };
    let st2 = st.clone();
    let bytes = tokio::task::spawn_blocking(move || {
        let carriers = &st2.shared.cfg.carriers;
        let depots: Vec<String> = known_depots(&st2.shared.state, carriers)
            .map_err(|e| ApiError::internal(e.to_string()))?
            .into_iter()
            .map(|d| d.0)
            .filter(|d| caller.reads(d) && carriers.carrier_of(d) == carrier)
            .collect();
        let export = export_day(&history, carriers, &depots, &carrier, day)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        export
            .files
            .into_iter()
            .find(|(name, _)| name == table)
            .map(|(_, b)| b)
            .ok_or_else(|| ApiError::internal("export table missing"))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok((
        [
            (header::CONTENT_TYPE, "application/vnd.apache.parquet"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        bytes,
    )
        .into_response())
}
