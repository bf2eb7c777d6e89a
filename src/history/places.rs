//! The street addresses of a route's stops (table `addresses`: route id to JSON
//! [`StopAddresses`]), folded from `StopAddresses` records like `AlertHandled` ones, read by
//! the dispatcher's map and lists, and purged with the route's history (the table and the
//! purge are in [`super::stores`]).
//!
//! A record names every stop of the route: it replaces what was kept. A route assigned again
//! without the API (`route load` over QUIC) keeps the addresses of the stops it still has.

use std::collections::BTreeMap;

use milepost_proto::route::{RouteId, StopId};
use serde::{Deserialize, Serialize};

use crate::history::stores::ADDRESSES;
use crate::history::{History, HistoryError};

/// A route's stops' addresses, and when they were set (a purge of an older closing of the
/// same route id leaves newer ones).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct StopAddresses {
    /// When they were set, server time, UTC ms.
    pub set_ms: i64,
    /// Stop id to address.
    pub stops: BTreeMap<String, String>,
}

impl History {
    /// Replaces the addresses of `route`'s stops with `set` (empty addresses are left out).
    /// Writing the same record twice leaves the same value.
    pub fn record_addresses(
        &self,
        route: &RouteId,
        set: &[(StopId, String)],
        at_ms: i64,
    ) -> Result<(), HistoryError> {
        let kept = StopAddresses {
            set_ms: at_ms,
            stops: set
                .iter()
                .filter(|(_, a)| !a.is_empty())
                .map(|(s, a)| (s.0.clone(), a.clone()))
                .collect(),
        };
        self.write_addresses(route, |_| Some(kept))
    }

    /// Keeps only the addresses of `stops` (the route was assigned again with these).
    pub fn keep_addresses(&self, route: &RouteId, stops: &[StopId]) -> Result<(), HistoryError> {
        self.write_addresses(route, |old| {
            let mut a = old?;
            a.stops.retain(|s, _| stops.iter().any(|k| &k.0 == s));
            Some(a)
        })
    }

    /// Writes `route`'s addresses as `f` makes them of the kept ones (none: removed).
    fn write_addresses(
        &self,
        route: &RouteId,
        f: impl FnOnce(Option<StopAddresses>) -> Option<StopAddresses>,
    ) -> Result<(), HistoryError> {
        let old: Option<StopAddresses> = {
            let tx = self.db().begin_read()?;
            let t = tx.open_table(ADDRESSES)?;
            let v = t.get(route.0.as_str())?;
            match v {
                Some(v) => Some(serde_json::from_slice(v.value())?),
                None => None,
            }
        };
        let had = old.is_some();
        let new = f(old).filter(|a| !a.stops.is_empty());
        // Most routes have no addresses: assigning one again writes (and syncs) nothing.
        if !had && new.is_none() {
            return Ok(());
        }
        let tx = self.db().begin_write()?;
        {
            let mut t = tx.open_table(ADDRESSES)?;
            match new {
                Some(a) => {
                    t.insert(route.0.as_str(), serde_json::to_vec(&a)?.as_slice())?;
                }
                None => {
                    t.remove(route.0.as_str())?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The addresses of `route`'s stops, by stop id (empty when none was given).
    pub fn addresses(&self, route: &RouteId) -> Result<BTreeMap<String, String>, HistoryError> {
        let tx = self.db().begin_read()?;
        let t = tx.open_table(ADDRESSES)?;
        let v = t.get(route.0.as_str())?;
        Ok(match v {
            Some(v) => serde_json::from_slice::<StopAddresses>(v.value())?.stops,
            None => BTreeMap::new(),
        })
    }
}
