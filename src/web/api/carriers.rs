//! `/api/v1/carriers/{carrier}`: a carrier as its back office sees it (name, zone, locale,
//! depots, sender name, and the brand its recipients' pages wear), and its brand set through
//! the API (`PUT`/`DELETE .../brand`, kept by [`crate::web::brands`], over
//! `[carriers.<id>.brand]`). A carrier's key reaches its own carrier only; another's is unknown
//! (404). A platform key reaches every carrier the configuration knows.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::apikeys::KeyRole;
use crate::tenancy::BrandConfig;
use crate::web::api::caller::Caller;
use crate::web::api::error::ApiError;
use crate::web::api::extract::{ApiJson, ApiPath};
use crate::web::respond::json;
use crate::web::state::WebState;

type St = State<Arc<WebState>>;

/// A carrier.
#[derive(Debug, Serialize, ToSchema)]
pub struct CarrierView {
    /// Its id (`[carriers.<id>]`; `default` for the depots no carrier lists).
    pub id: String,
    /// Its name.
    pub name: String,
    /// The IANA time zone of its days and pages.
    pub time_zone: String,
    /// How its pages and messages write times.
    pub locale: String,
    /// The depots it lists (none for `default`: it has every depot no carrier lists).
    pub depots: Vec<String>,
    /// The name its e-mails come from, if any.
    pub sender_name: Option<String>,
    /// The brand its recipients' pages wear.
    pub brand: BrandConfig,
    /// Where that brand comes from: `api`, `config` (`[carriers.<id>.brand]`) or `gateway`
    /// (`[web.brand]`, under the carrier's name when it has one).
    pub brand_source: String,
}

/// The carrier `id` if the caller may see it: its own, or any known one for a platform key
/// (shippers see no carrier).
fn visible(caller: &Caller, id: &str) -> Result<(), ApiError> {
    let unknown = || ApiError::not_found(format!("no carrier {id:?}"));
    if caller.scopes.iter().all(|s| s.role == KeyRole::Shipper) {
        return Err(ApiError::forbidden("a shipper's key sees parcels only"));
    }
    match caller.tenant.carrier() {
        Some(mine) if mine != id => Err(unknown()),
        // A platform key sees every carrier only with a `*` scope.
        None if !caller.reads_every_depot() => Err(ApiError::forbidden(
            "a platform key needs a '*' scope to see carriers",
        )),
        _ if !caller.carriers.knows(id) => Err(unknown()),
        _ => Ok(()),
    }
}

fn view(st: &WebState, id: &str) -> CarrierView {
    let carriers = &st.shared.cfg.carriers;
    let c = carriers.0.get(id).cloned().unwrap_or_default();
    let (brand, source) = match (st.brands.get(id), carriers.brand(id)) {
        (Some(b), _) => (b, "api"),
        (None, Some(b)) => (b.clone(), "config"),
        (None, None) => {
            let mut b = st.cfg().brand.clone();
            if !c.name.is_empty() {
                b.name = c.name.clone();
            }
            (b, "gateway")
        }
    };
    CarrierView {
        id: id.to_owned(),
        name: c.name,
        time_zone: c.time_zone,
        locale: c.locale,
        depots: c.depots,
        sender_name: c.sender_name,
        brand,
        brand_source: source.into(),
    }
}

/// Get a carrier
///
/// Its name, zone, locale, depots, sender name and the brand its recipients' pages wear.
#[utoipa::path(
    get,
    path = "/api/v1/carriers/{carrier}",
    tag = "carriers",
    params(("carrier" = String, Path, description = "Carrier id (`default`: the depots no carrier lists)")),
    responses((status = 200, description = "The carrier", body = CarrierView))
)]
pub async fn get_carrier(
    State(st): St,
    ApiPath(id): ApiPath<String>,
    caller: Caller,
) -> Result<Response, ApiError> {
    visible(&caller, &id)?;
    Ok(json(view(&st, &id)))
}

/// The caller may set `id`'s brand: it sees the carrier and has a `backoffice:*` scope.
fn may_brand(caller: &Caller, id: &str) -> Result<(), ApiError> {
    visible(caller, id)?;
    caller.require_everywhere(KeyRole::Backoffice)
}

/// Sets (`Some`) or removes a brand: in a cluster first for every gateway (the state bucket;
/// a failure changes nothing and answers 503), then in this gateway's file.
async fn keep(st: &Arc<WebState>, id: &str, brand: Option<BrandConfig>) -> Result<(), ApiError> {
    if let Some(c) = &st.shared.cluster {
        crate::cluster::brands::publish(c, id, brand.as_ref())
            .await
            .map_err(|e| ApiError::busy(format!("the brand was not shared: {e}")))?;
    }
    let (st2, id2) = (st.clone(), id.to_owned());
    tokio::task::spawn_blocking(move || st2.brands.put(&id2, brand))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(format!("brands.json not written: {e}")))
}

/// Set a carrier's brand
///
/// Name, logo and colours of its recipients' pages, over `[carriers.<id>.brand]`. Colours are
/// `#rgb` or `#rrggbb`; a logo is `http(s)://`, a path, or inline SVG.
#[utoipa::path(
    put,
    path = "/api/v1/carriers/{carrier}/brand",
    tag = "carriers",
    params(("carrier" = String, Path, description = "Carrier id")),
    request_body = BrandConfig,
    responses((status = 200, description = "Set: the carrier", body = CarrierView))
)]
pub async fn put_brand(
    State(st): St,
    ApiPath(id): ApiPath<String>,
    caller: Caller,
    body: ApiJson<BrandConfig>,
) -> Result<Response, ApiError> {
    may_brand(&caller, &id)?;
    let brand = body.value;
    brand.validate("brand").map_err(|e| {
        let first = e.split(' ').next().unwrap_or("brand");
        let field = first.strip_prefix("brand.").unwrap_or(first).to_owned();
        ApiError::unprocessable(e).field(field)
    })?;
    keep(&st, &id, Some(brand)).await?;
    Ok(json(view(&st, &id)))
}

/// Remove a carrier's brand set through the API
///
/// Its pages wear `[carriers.<id>.brand]` again, or the gateway's.
#[utoipa::path(
    delete,
    path = "/api/v1/carriers/{carrier}/brand",
    tag = "carriers",
    params(("carrier" = String, Path, description = "Carrier id")),
    responses((status = 204, description = "Removed"))
)]
pub async fn delete_brand(
    State(st): St,
    ApiPath(id): ApiPath<String>,
    caller: Caller,
) -> Result<Response, ApiError> {
    may_brand(&caller, &id)?;
    keep(&st, &id, None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
