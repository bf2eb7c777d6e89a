//! [`WebState`]: what every handler of the web listener is given (axum's `State`): the
//! gateway's shared state, the shutdown signal, the count of open event streams, the
//! back-office API's own state and the carriers' brands set through it.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use tokio::sync::watch;

use crate::server::shared::Shared;
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
}
