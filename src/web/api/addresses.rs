//! The street addresses of a route's stops as the API takes them: an optional `address` on
//! each stop of the route JSON (at most [`MAX_ADDRESS`] characters, no control characters),
//! logged as one `StopAddresses` record after the route is assigned and shown to the depot's
//! dispatchers (map labels, stop lists, search). The wire protocol's route has no address:
//! phones are not sent it.

use milepost_core::store::LogRecord;
use milepost_proto::route::{Route, StopId};
use serde::Deserialize;

use crate::web::api::error::ApiError;
use crate::web::api::extract::parse_json;
use crate::web::api::write::commit;
use crate::web::state::WebState;

/// The longest address, characters.
pub const MAX_ADDRESS: usize = 200;

#[derive(Deserialize)]
struct Stops {
    #[serde(default)]
    stops: Vec<StopAddress>,
}

#[derive(Deserialize)]
struct StopAddress {
    #[serde(default)]
    address: Option<String>,
}

/// The addresses of a route body's stops, in the order of `route.stops` (empty where a stop
/// has none), from the body's raw bytes. Errors name the field.
pub fn addresses_of(raw: &[u8], route: &Route) -> Result<Vec<(StopId, String)>, ApiError> {
    let parsed: Stops = parse_json(raw)?;
    route
        .stops
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let a = parsed
                .stops
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

/// Logs `route`'s addresses (every stop: one without an address loses any it had), unless
/// no stop has one and none had.
pub async fn record(
    st: &WebState,
    route: &Route,
    addresses: Vec<(StopId, String)>,
) -> Result<(), ApiError> {
    let had = match &st.shared.state.history {
        Some(h) => !h
            .addresses(&route.id)
            .map_err(|e| ApiError::internal(e.to_string()))?
            .is_empty(),
        None => return Ok(()),
    };
    if !had && addresses.iter().all(|(_, a)| a.is_empty()) {
        return Ok(());
    }
    let rec = LogRecord::StopAddresses {
        route_id: route.id.clone(),
        depot: route.depot.0.clone(),
        addresses,
        at_ms: st.shared.now_ms(),
    };
    commit(&st.shared, rec, ApiError::conflict).await
}
