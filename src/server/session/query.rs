//! A dispatcher's spatial query (within a box, nearby, nearest), checked and answered from the
//! live positions of its own depot.

use milepost_proto::{ErrorCode, ErrorFrame, Query, QueryKind, QueryResult, ServerMsg};

use crate::auth::Role;
use crate::server::session::peer::Peer;
use crate::server::shared::Shared;
use crate::state::lock;

/// Answers a dispatcher's query, scoped to its depot.
pub(super) fn on_query(peer: &Peer, shared: &Shared, q: Query) -> ServerMsg {
    if peer.claims.role != Role::Dispatcher {
        return ServerMsg::Error(ErrorFrame {
            code: ErrorCode::WrongRole,
            message: "queries need a dispatcher token".into(),
        });
    }
    let depot = &peer.claims.depot;
    // Folding only the partitions it owns, a gateway answers for the depots it holds.
    if let Err(elsewhere) = shared.serves(depot) {
        return ServerMsg::Error(ErrorFrame {
            code: ErrorCode::ServerBusy,
            message: elsewhere.to_string(),
        });
    }
    let limit = shared.cfg.limits.max_query_results as usize;
    let deg = |e7: i32| e7 as f64 * 1e-7;
    let bad = |what: &str| {
        ServerMsg::Error(ErrorFrame {
            code: ErrorCode::BadQuery,
            message: what.into(),
        })
    };
    // Ranges, not `abs()`: `i32::MIN.abs()` overflows.
    let valid = |lat: i32, lon: i32| {
        (-900_000_000..=900_000_000).contains(&lat)
            && (-1_800_000_000..=1_800_000_000).contains(&lon)
    };
    let pos = lock(&shared.state.positions);
    let answer = match q.kind {
        QueryKind::Within {
            min_lat_e7,
            min_lon_e7,
            max_lat_e7,
            max_lon_e7,
        } => {
            if !valid(min_lat_e7, min_lon_e7)
                || !valid(max_lat_e7, max_lon_e7)
                || min_lat_e7 > max_lat_e7
                || min_lon_e7 > max_lon_e7
            {
                return bad("box corners out of range or inverted");
            }
            pos.within(
                depot,
                (deg(min_lat_e7), deg(min_lon_e7)),
                (deg(max_lat_e7), deg(max_lon_e7)),
                limit,
            )
        }
        QueryKind::Nearby {
            lat_e7,
            lon_e7,
            radius_m,
        } => {
            let radius_ok = radius_m > 0.0 && radius_m <= 1.0e6; // false for NaN
            if !valid(lat_e7, lon_e7) || !radius_ok {
                return bad("centre out of range or radius not in (0, 1000 km]");
            }
            pos.nearby(depot, deg(lat_e7), deg(lon_e7), radius_m as f64, limit)
        }
        QueryKind::Nearest { lat_e7, lon_e7, k } => {
            if !valid(lat_e7, lon_e7) || k == 0 {
                return bad("centre out of range or k = 0");
            }
            pos.nearest(depot, deg(lat_e7), deg(lon_e7), (k as usize).min(limit))
        }
    };
    ServerMsg::QueryResult(QueryResult {
        id: q.id,
        drivers: answer.drivers,
        truncated: answer.truncated,
    })
}
