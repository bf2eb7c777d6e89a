//! The street addresses of a route's stops as the API takes them: an optional `address` on
//! each stop of the route JSON (at most [`MAX_ADDRESS`] characters, no control characters),
//! logged as one `StopAddresses` record after the route is assigned and shown to the depot's
//! dispatchers (map labels, stop lists, search). The wire protocol's route has no address:
//! phones are not sent it.

use milepost_core::store::LogRecord;
use milepost_proto::route::{Route, RouteId, StopId};
use serde::Deserialize;

use crate::web::api::error::ApiError;
use crate::web::api::write::commit;
use crate::web::state::WebState;

/// The longest address, characters.
pub const MAX_ADDRESS: usize = 200;

/// A stop of a route body as far as its address goes (the rest is the route's).
#[derive(Deserialize)]
pub struct StopAddress {
    #[serde(default)]
    address: Option<String>,
}

/// The addresses of a route body's stops (`stops`, as parsed beside the route), in the order
/// of `route.stops` (empty where a stop has none). Errors name the field.
pub fn addresses_of(
    stops: &[StopAddress],
    route: &Route,
) -> Result<Vec<(StopId, String)>, ApiError> {
    route
        .stops
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let a = stops
                .get(i)
                .and_then(|p| p.address.as_deref())
                .unwrap_or("")
                .trim()
                .to_owned();
            if a.chars().count() > MAX_ADDRESS || a.chars().any(char::is_control) {
                return Err(ApiError::bad_request(format!(
                    "an address is at most {MAX_ADDRESS} characters of text"
                ))
                .field(format!("stops[{i}].address")));
            }
            Ok((s.id.clone(), a))
        })
        .collect()
}

/// Logs the addresses of route `id` of `depot` (every stop: one without an address loses
/// any it had), unless no stop has one and none had.
pub async fn record(
    st: &WebState,
    id: &RouteId,
    depot: &str,
    addresses: Vec<(StopId, String)>,
) -> Result<(), ApiError> {
    let had = match &st.shared.state.history {
        Some(h) => !h
            .addresses(id)
            .map_err(|e| ApiError::internal(e.to_string()))?
            .is_empty(),
        None => return Ok(()),
    };
    if !had && addresses.iter().all(|(_, a)| a.is_empty()) {
        return Ok(());
    }
    let rec = LogRecord::StopAddresses {
        route_id: id.clone(),
        depot: depot.to_owned(),
        addresses,
        at_ms: st.shared.now_ms(),
    };
    commit(&st.shared, rec, ApiError::conflict).await
}
