//! [`ApiState`]: what the back-office API keeps beside the gateway's shared state.

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::tenancy::Carriers;
use crate::web::api::idempotency::Idempotency;
use crate::web::api::limits::RateLimits;

/// What the API keeps beside the gateway's shared state.
pub struct ApiState {
    /// Answers kept for idempotency keys.
    pub idempotency: Idempotency,
    /// Per-caller rate limits.
    pub limits: RateLimits,
    /// Held by every write that reads a route and then changes it (create, put, add or
    /// remove a stop, re-sequence, cancel), so two edits of a route never start from the same
    /// version and one of them is lost.
    pub route_edits: tokio::sync::Mutex<()>,
    /// The carriers (`[carriers]`), shared by every caller of a request.
    pub carriers: Arc<Carriers>,
}

impl ApiState {
    /// The API's state for a gateway configured by `cfg`.
    pub fn new(cfg: &Config) -> ApiState {
        let api = &cfg.web.api;
        ApiState {
            idempotency: Idempotency::new(
                Duration::from_secs(api.idempotency_ttl_s),
                api.idempotency_max,
            ),
            limits: RateLimits::new(api.rate_per_s, api.burst),
            route_edits: tokio::sync::Mutex::new(()),
            carriers: Arc::new(cfg.carriers.clone()),
        }
    }
}
