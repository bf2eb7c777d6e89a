//! Reading the closed routes' analytics facts: by depot and UTC day range, through the
//! `route_days` index.

use milepost_core::analytics::RouteFacts;
use milepost_proto::route::DepotId;

use super::{History, HistoryError, FACTS, ROUTE_DAYS, SEP};

impl History {
    /// The facts of `depot`'s closed routes planned on UTC days `from..=to` (`YYYY-MM-DD`).
    pub fn facts(
        &self,
        depot: &DepotId,
        from: &str,
        to: &str,
    ) -> Result<Vec<RouteFacts>, HistoryError> {
        let tx = self.db().begin_read()?;
        let days = tx.open_table(ROUTE_DAYS)?;
        let facts = tx.open_table(FACTS)?;
        let start = format!("{}{SEP}{from}{SEP}", depot.0);
        // Every key of day `to` sorts before `to` followed by a character above the separator.
        let end = format!("{}{SEP}{to}\u{2}", depot.0);
        let mut out = Vec::new();
        for entry in days.range(start.as_str()..end.as_str())? {
            let (k, _) = entry?;
            let Some(id) = k.value().rsplit(SEP).next().map(str::to_owned) else {
                continue;
            };
            if let Some(v) = facts.get(id.as_str())? {
                out.push(serde_json::from_slice(v.value())?);
            }
        }
        Ok(out)
    }
}

impl History {
    /// Every depot with a closed route in the history, ascending.
    pub fn depots(&self) -> Result<Vec<DepotId>, HistoryError> {
        let tx = self.db().begin_read()?;
        let days = tx.open_table(ROUTE_DAYS)?;
        let mut out = Vec::new();
        let mut from = String::new();
        // One seek per depot: after a depot's keys, jump past them.
        loop {
            let next = days.range(from.as_str()..)?.next().transpose()?;
            let Some((k, _)) = next else { break };
            let Some(depot) = k.value().split(SEP).next().map(str::to_owned) else {
                break;
            };
            from = format!("{depot}\u{2}");
            out.push(DepotId(depot));
        }
        Ok(out)
    }
}
