//! [`WebState`]: what every handler of the web listener is given (axum's `State`): the
//! gateway's shared state, the shutdown signal, the count of open event streams, the
//! back-office API's own state and the carriers' brands set through it.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use tokio::sync::watch;

use crate::server::shared::Shared;
use crate::tenancy::BrandConfig;
use crate::web::api::state::ApiState;
use crate::web::config::WebConfig;

/// Everything the handlers share.
pub struct WebState {
    /// The gateway's shared state.
    pub shared: Arc<Shared>,
    /// Fires when the gateway shuts down (event streams end then).
    pub stop: watch::Receiver<bool>,
    /// Event streams open now.
    pub streams: AtomicUsize,
    /// The back-office API's keys, proof files, idempotency answers and rate limits.
    pub api: ApiState,
    /// Carriers' brands set through the API.
    pub brands: crate::web::brands::Brands,
}

impl WebState {
    /// The web configuration.
    pub fn cfg(&self) -> &WebConfig {
        &self.shared.cfg.web
    }

    /// The brand of `depot`'s pages: its carrier's brand set through the API, else the
    /// configuration's ([`crate::tenancy::Carriers::brand_of_depot`]).
    pub fn brand_of_depot(&self, depot: &str) -> BrandConfig {
        let carriers = &self.shared.cfg.carriers;
        let carrier = carriers.carrier_of(depot);
        match self.brands.get(carrier) {
            Some(b) => BrandConfig {
                carrier: Some(carrier.to_owned()),
                ..b
            },
            None => carriers.brand_of_depot(depot, &self.cfg().brand),
        }
    }

    /// The brand a style sheet or logo names by carrier (`?carrier=`): its own (API, then
    /// configuration), else the gateway's.
    pub fn brand_of_carrier(&self, carrier: Option<&str>) -> BrandConfig {
        carrier
            .and_then(|c| {
                self.brands
                    .get(c)
                    .or_else(|| self.shared.cfg.carriers.brand(c).cloned())
            })
            .unwrap_or_else(|| self.cfg().brand.clone())
    }
}
