//! `/dashboard`: a depot's numbers over the last days, for its dispatcher (the token's depot,
//! like `/dispatch`): on-time and first-attempt rates per day drawn with uPlot (bundled in the
//! binary, `web/vendor/`), the period's figures, failures by reason and the accuracy of the
//! ETAs recipients were shown, as tables too (screen readers read the tables; the charts are
//! their picture). `/dashboard/data?days=N` is the same report as `/api/v1/analytics`.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::Days;
use serde::Deserialize;

use crate::analytics::report::{build, Dim};
use crate::analytics::{routes, today, Filter};
use crate::tenancy::BrandConfig;
use crate::web::api::caller::Caller;
use crate::web::assets::asset_version;
use crate::web::auth::{authorize_dispatcher, PageQuery};
use crate::web::dispatch::dispatcher_page;
use crate::web::error::WebError;
use crate::web::pages::{escape, head};
use crate::web::respond::json;
use crate::web::state::WebState;

/// Most days a dashboard shows.
const MAX_DAYS: u64 = 92;

/// `GET /dashboard`.
pub async fn dashboard(
    State(st): State<Arc<WebState>>,
    headers: HeaderMap,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    dispatcher_page(&st, &headers, q, "/dashboard", |depot| {
        render_dashboard(&st.brand_of_depot(depot), depot)
    })
}

fn render_dashboard(brand: &BrandConfig, depot: &str) -> String {
    let mut out = String::with_capacity(4 * 1024);
    head(
        &mut out,
        brand,
        &format!("Depot {depot}: numbers"),
        "dashboard",
    );
    let v = asset_version();
    let _ = write!(
        out,
        "<link rel=\"stylesheet\" href=\"/assets/uPlot.min.css?v={v}\">\
         <main class=\"dash-main\"><h1>Depot <span id=\"depot\">{d}</span>: how the days went</h1>\
         <p><label>Period: <select id=\"days\"><option value=\"7\">7 days</option>\
         <option value=\"14\" selected>14 days</option><option value=\"30\">30 days</option></select></label> \
         <span id=\"period\" class=\"muted\"></span></p>\
         <section class=\"card\"><h2>The period</h2><dl id=\"summary\" class=\"figures\" aria-live=\"polite\"></dl></section>\
         <section class=\"card\"><h2>On time and first attempts, per day</h2>\
         <div id=\"rates-chart\" class=\"chart\" role=\"img\" aria-label=\"On-time and first-attempt rates per day (the table below has the numbers)\"></div>\
         <table id=\"days-table\" class=\"table\"><caption class=\"muted\">Per day</caption><thead><tr><th scope=\"col\">Day</th>\
         <th scope=\"col\">Routes</th><th scope=\"col\">Delivered</th><th scope=\"col\">Failed</th>\
         <th scope=\"col\">On time</th><th scope=\"col\">First attempt</th><th scope=\"col\">Stops per hour</th></tr></thead><tbody></tbody></table></section>\
         <section class=\"card\"><h2>Failed attempts by reason</h2><table id=\"reasons\" class=\"table\"><thead><tr>\
         <th scope=\"col\">Reason</th><th scope=\"col\">Attempts</th></tr></thead><tbody></tbody></table></section>\
         <section class=\"card\"><h2>ETAs recipients were shown</h2><table id=\"eta\" class=\"table\"><thead><tr>\
         <th scope=\"col\">Stops ahead</th><th scope=\"col\">ETAs</th><th scope=\"col\">Mean error</th><th scope=\"col\">Bias</th></tr></thead>\
         <tbody></tbody></table></section></main>\
         <footer class=\"muted\">Days are the carrier's local days; live routes count with their figures so far.</footer>\
         <script src=\"/assets/uPlot.iife.min.js?v={v}\"></script><script src=\"/assets/dashboard.js?v={v}\"></script></body></html>",
        d = escape(depot),
    );
    out
}

/// The query of `/dashboard/data`.
#[derive(Debug, Deserialize)]
pub struct DataQuery {
    /// Days back from today, today included (1-92, default 14).
    pub days: Option<u64>,
}

/// `GET /dashboard/data?days=N`: the depot's report by day.
pub async fn data(
    State(st): State<Arc<WebState>>,
    headers: HeaderMap,
    q: Result<Query<DataQuery>, QueryRejection>,
) -> Result<Response, WebError> {
    let (claims, token) = authorize_dispatcher(&st.shared, &headers)?;
    let Ok(Query(q)) = q else {
        return Err(WebError::BadRequest("days must be a number".into()));
    };
    let days = q.days.unwrap_or(14);
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(WebError::BadRequest(format!(
            "days must be 1 to {MAX_DAYS}"
        )));
    }
    let depot = claims.depot.clone();
    let caller = Caller::dispatcher(st.api.carriers.clone(), &depot, &token);
    let st2 = st.clone();
    let report = tokio::task::spawn_blocking(move || {
        let carriers = &st2.shared.cfg.carriers;
        let carrier = carriers.carrier_of(&depot).to_owned();
        let to = today(carriers, &carrier, st2.shared.now_ms());
        let from = to.checked_sub_days(Days::new(days - 1)).unwrap_or(to);
        let filter = Filter {
            depot: Some(depot),
            ..Filter::default()
        };
        let placed = routes(&st2.shared.state, carriers, from, to, &filter, |d| {
            caller.reads(d)
        })?;
        let day = |d: chrono::NaiveDate| d.format("%Y-%m-%d").to_string();
        Ok::<_, crate::history::HistoryError>(build(&day(from), &day(to), &[Dim::Day], &placed))
    })
    .await
    .map_err(|e| WebError::Internal(e.to_string()))?
    .map_err(|e| WebError::Internal(e.to_string()))?;
    Ok(json(report))
}
