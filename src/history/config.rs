//! [`HistoryConfig`]: the `[history]` section: how long closed routes and their parcels stay
//! answerable.

use serde::{Deserialize, Serialize};

/// The `[history]` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryConfig {
    /// Days a closed route and its parcels stay answerable (status lookups, the API, the
    /// tracking page).
    pub retention_days: u32,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig { retention_days: 90 }
    }
}
