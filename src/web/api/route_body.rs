//! A route as the back-office API takes it ([`RouteBody`]): the route JSON, and beside it the
//! recipients' contacts, the stops' addresses and the carrier the sender names; and their
//! checks (each contact names a parcel of the route, the carrier owns the route's depot).

use std::collections::BTreeMap;

use milepost_proto::route::{Route, StopId};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::notify::contact::Contact;
use crate::web::api::caller::Caller;
use crate::web::api::error::ApiError;
use crate::web::api::extract::{parse_json, ApiJson};
use crate::web::api::recipients::check_contact;

/// A route as the API takes it: the route JSON of docs/ROUTES.md, and the recipients' contacts
/// of its parcels (personal data: kept only for notifications, never in the log). The route
/// is parsed on its own (its errors name their field as for a plain route), then
/// `recipients` and the stops' addresses from the same body (`route_body`).
#[derive(Clone, Debug, ToSchema)]
pub struct RouteBody {
    /// The route.
    #[serde(flatten)]
    pub route: Route,
    /// Recipients' contacts by tracking number (each a parcel of this route).
    pub recipients: BTreeMap<String, Contact>,
    /// The carrier the route is for (`[carriers.<id>]`), if the sender names it: it must be
    /// the carrier of the route's depot (the depot decides; this catches a route sent to the
    /// wrong carrier's depot).
    pub carrier: Option<String>,
    /// The stops' street addresses (`stops[i].address` in the body, at most 200 characters):
    /// shown to the depot's dispatchers, never sent to phones.
    #[schema(ignore)]
    pub addresses: Vec<(StopId, String)>,
}

impl RouteBody {
    /// A route edited by the API (its recipients are set already).
    pub(super) fn plain(route: Route) -> RouteBody {
        RouteBody {
            route,
            recipients: BTreeMap::new(),
            carrier: None,
            addresses: Vec::new(),
        }
    }
}

/// What a route body holds beside the route: the recipients, and the stops' addresses.
#[derive(Deserialize)]
struct Extras {
    #[serde(default)]
    recipients: BTreeMap<String, Contact>,
    #[serde(default)]
    stops: Vec<crate::web::api::addresses::StopAddress>,
    #[serde(default)]
    carrier: Option<String>,
}

/// A route body from its parsed route and its raw bytes.
pub(super) fn route_body(body: ApiJson<Route>) -> Result<RouteBody, ApiError> {
    let extras: Extras = parse_json(&body.raw)?;
    let addresses = crate::web::api::addresses::addresses_of(&extras.stops, &body.value)?;
    Ok(RouteBody {
        route: body.value,
        recipients: extras.recipients,
        carrier: extras.carrier,
        addresses,
    })
}

/// Checks the contacts of a route's body: each names a parcel of the route and is well formed.
pub(super) fn check_recipients(body: &RouteBody) -> Result<(), ApiError> {
    for (t, c) in &body.recipients {
        let on_route = body
            .route
            .stops
            .iter()
            .flat_map(|s| &s.parcels)
            .any(|p| &p.tracking.0 == t);
        if !on_route {
            return Err(
                ApiError::bad_request(format!("{t} is not a parcel of this route"))
                    .field(format!("recipients.{t}")),
            );
        }
        check_contact(c, &format!("recipients.{t}."))?;
    }
    Ok(())
}

/// A route that names its carrier: the carrier is known and owns the route's depot. A carrier's
/// key learns nothing of other carriers (an id not its own is refused as such).
pub(super) fn check_route_carrier(
    caller: &Caller,
    carrier: &str,
    depot: &str,
) -> Result<(), ApiError> {
    let carriers = &caller.carriers;
    let refuse = |why: String| Err(ApiError::unprocessable(why).field("carrier"));
    match caller.tenant.carrier() {
        Some(mine) if mine != carrier => refuse(format!(
            "a key of carrier {mine} sends {mine}'s routes only"
        )),
        _ if !carriers.knows(carrier) => refuse(format!(
            "no carrier {carrier:?} (a route's carrier is one of [carriers])"
        )),
        _ if carriers.carrier_of(depot) != carrier => refuse(format!(
            "depot {depot} is not carrier {carrier}'s: check the route's depot or carrier"
        )),
        _ => Ok(()),
    }
}
