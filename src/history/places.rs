//! The street addresses of a route's stops (table `addresses`: route id to JSON
//! `{stop id: address}`), folded from `StopAddresses` records like `AlertHandled` ones, read by
//! the dispatcher's map and lists, and purged with the route's history (the table and the
//! purge are in [`super::stores`]).

use std::collections::BTreeMap;

use milepost_proto::route::{RouteId, StopId};
use redb::ReadableTable;

use crate::history::stores::ADDRESSES;
use crate::history::{History, HistoryError};

impl History {
    /// Sets the addresses of `route`'s stops in `set` (an empty one removes the stop's); the
    /// others keep theirs. Writing the same record twice leaves the same value.
    pub fn record_addresses(
        &self,
        route: &RouteId,
        set: &[(StopId, String)],
    ) -> Result<(), HistoryError> {
        let tx = self.db().begin_write()?;
        {
            let mut t = tx.open_table(ADDRESSES)?;
            let mut all: BTreeMap<String, String> = match t.get(route.0.as_str())? {
                Some(v) => serde_json::from_slice(v.value())?,
                None => BTreeMap::new(),
            };
            for (stop, a) in set {
                match a.is_empty() {
                    true => all.remove(&stop.0),
                    false => all.insert(stop.0.clone(), a.clone()),
                };
            }
            match all.is_empty() {
                true => {
                    t.remove(route.0.as_str())?;
                }
                false => {
                    t.insert(route.0.as_str(), serde_json::to_vec(&all)?.as_slice())?;
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
            Some(v) => serde_json::from_slice(v.value())?,
            None => BTreeMap::new(),
        })
    }
}
